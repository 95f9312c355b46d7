package plugin

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"
)

// TestShapeReasonsComplete: every Reason constant of stats.go is counted
// by name per shape (shapeReasons, shapes.go), so that a reason added later
// is not lumped into "other".
func TestShapeReasonsComplete(t *testing.T) {
	fset := token.NewFileSet()
	names := func(file string, keep func(*ast.GenDecl) []string) []string {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok {
				out = append(out, keep(g)...)
			}
		}
		slices.Sort(out)
		return out
	}
	declared := names("stats.go", func(g *ast.GenDecl) (out []string) {
		if g.Tok != token.CONST {
			return nil
		}
		for _, s := range g.Specs {
			for _, n := range s.(*ast.ValueSpec).Names {
				if strings.HasPrefix(n.Name, "Reason") {
					out = append(out, n.Name)
				}
			}
		}
		return out
	})
	listed := names("shapes.go", func(g *ast.GenDecl) (out []string) {
		for _, s := range g.Specs {
			v, ok := s.(*ast.ValueSpec)
			if !ok || len(v.Names) != 1 || v.Names[0].Name != "shapeReasons" {
				continue
			}
			for _, e := range v.Values[0].(*ast.CompositeLit).Elts {
				out = append(out, e.(*ast.Ident).Name)
			}
		}
		return out
	})
	if !slices.Equal(declared, listed) {
		t.Errorf("stats.go declares the reasons\n%v\nshapeReasons lists\n%v", declared, listed)
	}
}
