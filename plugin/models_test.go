package plugin_test

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// The models of the differential scenario: they cover the GORM features the
// cache must be transparent to.

type Company struct {
	ID   uint
	Name string
}

type Language struct {
	ID   uint
	Code string `gorm:"uniqueIndex;size:16"`
}

type Toy struct {
	ID    uint
	PetID uint
	Name  string
}

type Pet struct {
	ID     uint
	UserID uint
	Name   string
	Toys   []Toy
}

// Tag is a custom Scanner/Valuer stored as "a|b".
type Tag struct{ Parts []string }

func (t Tag) Value() (driver.Value, error) { return strings.Join(t.Parts, "|"), nil }

func (t *Tag) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		t.Parts = nil
	case string:
		t.Parts = strings.Split(v, "|")
	case []byte:
		t.Parts = strings.Split(string(v), "|")
	default:
		return fmt.Errorf("Tag.Scan: %T", src)
	}
	return nil
}

type User struct {
	gorm.Model
	Name      string `gorm:"size:64"`
	Age       int
	Birthday  *time.Time
	CompanyID *uint
	Company   Company
	Languages []Language `gorm:"many2many:user_languages"`
	Pets      []Pet
	Secret    string            `json:"-"`
	Meta      map[string]string `gorm:"serializer:json"`
	Score     sql.NullFloat64
	Nick      *string `gorm:"size:32"`
	Tag       Tag     `gorm:"size:128"`
	Active    bool
	Loaded    int `gorm:"-"` // set by AfterFind: proves hooks run on hits
}

func (u *User) AfterFind(*gorm.DB) error {
	u.Loaded++
	if u.Name == "hook-error" {
		return errors.New("AfterFind refuses hook-error")
	}
	return nil
}

// Account is a table without soft delete, read through raw SQL.
type Account struct {
	ID      uint
	Owner   string `gorm:"size:64"`
	Balance int64
}

// Label is a named string type.
type Label string

// Narrow reads users into narrow types: an int8 that ages times ten
// overflow, a uint8 key, a named string type.
type Narrow struct {
	ID     uint8
	Name   Label
	Age    int8
	Active bool
}

func (Narrow) TableName() string { return "users" }
