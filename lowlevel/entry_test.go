package lowlevel

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/store"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, e := range []*entry{
		newEntry([]string{"orders", "*Lowlevel:ll", store.GlobalTag}, []uint64{1, math.MaxUint64, 3}, time.Now().UnixNano(), []byte{0xc0}),
		newEntry([]string{"", "ü"}, []uint64{0, 7}, 0, []byte("\xa3abc")),
		newEntry([]string{}, []uint64{}, 0, []byte{1}),
	} {
		b := e.marshal()
		if len(b) != e.envelopeSize() {
			t.Fatalf("envelope of %d bytes, envelopeSize %d", len(b), e.envelopeSize())
		}
		got, err := unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.tags, e.tags) || !slices.Equal(got.Versions, e.Versions) ||
			got.Deadline != e.Deadline || string(got.payload) != string(e.payload) {
			t.Fatalf("round trip: %+v, want %+v", got, e)
		}
	}
}

// FuzzUnmarshal checks that no input makes the envelope decoder or the
// value decoder panic, and that what decodes re-encodes to the same bytes.
func FuzzUnmarshal(f *testing.F) {
	e := newEntry([]string{"orders", store.GlobalTag}, []uint64{5, 9}, 1, []byte{0x93, 1, 2, 3})
	f.Add(e.marshal())
	f.Add([]byte{'L', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}) // the former format
	f.Add([]byte{'E', core.EnvelopeVersion, byte(core.KindValue), 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := unmarshal(b)
		if err != nil {
			return
		}
		// Uncompressed and with minimal varints (same length), a round
		// trip is exact.
		if again := got.marshal(); b[1]&core.FlagCompressed == 0 && len(again) == len(b) && string(again) != string(b) {
			t.Fatalf("re-encoded %x as %x", b, again)
		}
		_, _ = valueOf[map[string]any](got)
		_, _ = valueOf[[]Point](got)
		_, _ = integer(got.payload)
	})
}

type Point struct {
	X, Y int
	At   time.Time
}

func TestShareable(t *testing.T) {
	t.Parallel()
	type inner struct {
		A [3]int
		S string
	}
	type withSlice struct{ B []byte }
	for _, tc := range []struct {
		v    any
		want bool
	}{
		{1, true}, {"s", true}, {3.5, true}, {Point{}, true}, {inner{}, true}, {[2]Point{}, true},
		{time.Time{}, true},
		{[]int{}, false}, {map[string]int{}, false}, {&Point{}, false}, {withSlice{}, false},
		{[1][]int{}, false}, {struct{ E error }{}, false},
	} {
		if got := shareable(reflect.TypeOf(tc.v)); got != tc.want {
			t.Errorf("shareable(%T) = %v, want %v", tc.v, got, tc.want)
		}
	}
	if shareable(nil) {
		t.Error("shareable(nil)")
	}
}

func TestAddTo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v     any
		delta int64
		want  any
		err   bool
	}{
		{int(1), 2, int(3), false},
		{int8(127), 1, nil, true},
		{int8(-1), -127, int8(-128), false},
		{uint8(0), -1, nil, true},
		{uint16(10), 5, uint16(15), false},
		{uint64(math.MaxUint64), 0, nil, true},
		{int64(math.MinInt64), -1, nil, true},
		{"x", 1, nil, true},
		{nil, 1, nil, true},
		{3.5, 1, nil, true},
	} {
		got, _, err := addTo(tc.v, tc.delta)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("addTo(%T %v, %d) = %v, %v", tc.v, tc.v, tc.delta, got, err)
		}
		if err != nil && !errors.Is(err, ErrNotInteger) {
			t.Errorf("addTo: %v", err)
		}
	}
}

func TestInteger(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    any
		want int64
		ok   bool
	}{
		{0, 0, true}, {-1, -1, true}, {int64(math.MinInt64), math.MinInt64, true},
		{uint64(math.MaxInt64), math.MaxInt64, true}, {uint64(math.MaxUint64), 0, false},
		{uint8(200), 200, true}, {1.5, 0, false}, {"1", 0, false}, {nil, 0, false},
	} {
		b, err := encode(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := integer(b)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("integer(%T %v) = %d, %v", tc.v, tc.v, got, err)
		}
	}
	if _, ok := add64(math.MaxInt64, 1); ok {
		t.Error("add64 overflow")
	}
	if s, ok := add64(-3, 5); s != 2 || !ok {
		t.Error("add64")
	}
}

func TestCheckMsgpack(t *testing.T) {
	t.Parallel()
	big := make(map[string]int, 70000)
	for i := range 70000 {
		big[strings.Repeat("k", i%40)+strconv.Itoa(i)] = i
	}
	nested := any(1)
	for range 100 {
		nested = []any{nested, "x"}
	}
	for _, v := range []any{
		nil, true, false, 0, 127, 128, -1, -32, -33, -129, math.MinInt64, uint64(math.MaxUint64),
		float32(1.5), 2.5, "", strings.Repeat("s", 31), strings.Repeat("s", 32), strings.Repeat("s", 256),
		strings.Repeat("s", 70000), []byte{}, make([]byte, 300), make([]byte, 70000),
		time.Now(), time.Unix(1, 0), time.Unix(1<<40, 5), // the three time extension sizes
		make([]int, 15), make([]int, 16), make([]int, 70000), map[string]int{}, big,
		Point{X: 1, At: time.Now()}, []Point{{}, {}}, nested, map[int][]string{1: {"a"}},
	} {
		b, err := encode(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkMsgpack(b); err != nil {
			t.Errorf("checkMsgpack(encode(%T)): %v", v, err)
		}
		if err := checkMsgpack(b[:len(b)-1]); err == nil && len(b) > 0 {
			t.Errorf("checkMsgpack of truncated %T: no error", v)
		}
		if err := checkMsgpack(append(b, 0)); err == nil {
			t.Errorf("checkMsgpack with a trailing byte after %T: no error", v)
		}
	}
	deep := []byte{}
	for range maxDepth + 1 {
		deep = append(deep, 0x91) // an array of one element
	}
	if err := checkMsgpack(append(deep, 0)); err == nil {
		t.Error("too deep: no error")
	}
	for _, b := range [][]byte{{}, {0xc1}, {0xdd, 0xff, 0xff, 0xff, 0xff, 0}, {0xdf, 0, 0, 0, 1, 0}, {0xdb, 0, 0, 0, 9, 'a'}} {
		if err := checkMsgpack(b); err == nil {
			t.Errorf("checkMsgpack(%x): no error", b)
		}
	}
}
