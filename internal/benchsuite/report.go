package benchsuite

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The measurement and the report shared by gormcache-bench and the
// gormcache CLI's bench command.

// Hooks follow a measurement's progress; nil functions are skipped.
type Hooks struct {
	Starting func(round int, env, name string)
	Finished func(round int, env, name string, res testing.BenchmarkResult)
}

func (h Hooks) starting(round int, env, name string) {
	if h.Starting != nil {
		h.Starting(round, env, name)
	}
}

func (h Hooks) finished(round int, env, name string, res testing.BenchmarkResult) {
	if h.Finished != nil {
		h.Finished(round, env, name, res)
	}
}

// figure is one case's result over the rounds: the median ns/op, the
// allocations of the last round, and whether every round ran.
type Figure struct {
	ns     float64
	allocs int64
	rounds []float64
	ok     bool
}

// Results are the figures of one environment, by case name.
type Results struct {
	Name string
	Figs map[string]*Figure
}

func (r Results) Get(name string) Figure {
	if f := r.Figs[name]; f != nil {
		return *f
	}
	return Figure{}
}

type Case struct {
	Name string
	F    func(*testing.B)
}

// Cases lists the cases of an environment, plain before cached, as
// gormcache-bench runs them.
func Cases(e *Env) []Case {
	switch {
	case strings.HasSuffix(e.Name, "+redis"):
		return []Case{
			{"First/plain", e.FirstPlain}, {"First/hit", e.FirstHit}, {"First/get", e.FirstGet},
			{"First/hit_get", e.FirstHitGet},
			{"Find100/plain", e.Find100Plain}, {"Find100/hit", e.Find100Hit},
		}
	case e.Name == "null":
		return []Case{
			{"First/plain", e.FirstPlain}, {"First/hit", e.FirstHit}, {"First/hit_console", e.FirstHitConsole},
			{"Find100/plain", e.Find100Plain}, {"Find100/hit", e.Find100Hit},
		}
	}
	return []Case{
		{"First/plain", e.FirstPlain}, {"First/hit", e.FirstHit}, {"First/hit_console", e.FirstHitConsole},
		{"First/plain_inv", e.FirstPlainInv}, {"First/miss", e.FirstMiss},
		{"Find100/plain", e.Find100Plain}, {"Find100/hit", e.Find100Hit},
		{"Find100/plain_inv", e.Find100PlainInv}, {"Find100/miss", e.Find100Miss},
		{"Write/plain", e.WritePlain}, {"Write/cached", e.WriteCached},
		{"First/miss_paired", e.FirstMissPaired}, {"Find100/miss_paired", e.Find100MissPaired},
		{"Write/paired", e.WritePaired},
		{"Invalidate", e.Invalidate},
	}
}

// measure runs every case of every environment count times, round-robin, so
// that a slow spell of the machine hits plain and cached alike, and keeps
// the median of each.
func Measure(envs []*Env, count int, h Hooks) []Results {
	return measure(envs, count, h, func(e *Env, _ int) []Case { return Cases(e) })
}

// MeasureConsole measures the console's cost alone: First/hit and
// First/hit_console, count rounds, in turn (the order swapped every other
// round, so that neither always runs first).
//
// In each round it also measures the CPU time per hit of the thread
// running them (FirstHitCPU, n hits each, where it can be read): figures
// "cpu/First/hit" and "cpu/First/hit_console".
func MeasureConsole(envs []*Env, count int, n int, h Hooks) ([]Results, error) {
	out := measure(envs, count, h, func(e *Env, round int) []Case {
		off, on := Case{"First/hit", e.FirstHit}, Case{"First/hit_console", e.FirstHitConsole}
		if round%2 == 0 {
			return []Case{on, off}
		}
		return []Case{off, on}
	})
	for i, e := range envs {
		for round := 1; round <= count; round++ {
			for _, collecting := range []bool{round%2 == 0, round%2 != 0} {
				d, ok, err := e.FirstHitCPU(n, collecting)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", e.Name, err)
				}
				if !ok {
					continue
				}
				name := "cpu/First/hit"
				if collecting {
					name = "cpu/First/hit_console"
				}
				f := out[i].Figs[name]
				if f == nil {
					f = &Figure{ok: true}
					out[i].Figs[name] = f
				}
				f.rounds = append(f.rounds, float64(d.Nanoseconds()))
			}
		}
		for _, name := range []string{"cpu/First/hit", "cpu/First/hit_console"} {
			if f := out[i].Figs[name]; f != nil {
				f.ns = median(f.rounds)
			}
		}
	}
	return out, nil
}

func measure(envs []*Env, count int, h Hooks, cases func(*Env, int) []Case) []Results {
	out := make([]Results, len(envs))
	for i, e := range envs {
		out[i] = Results{Name: e.Name, Figs: map[string]*Figure{}}
	}
	for round := 1; round <= count; round++ {
		for i, e := range envs {
			for _, c := range cases(e, round) {
				h.starting(round, e.Name, c.Name)
				res := testing.Benchmark(c.F)
				h.finished(round, e.Name, c.Name, res)
				f := out[i].Figs[c.Name]
				if f == nil {
					f = &Figure{ok: true}
					out[i].Figs[c.Name] = f
				}
				if res.N == 0 { // testing.Benchmark reports a failed benchmark as a zero result
					f.ok = false
					continue
				}
				f.rounds = append(f.rounds, float64(res.T.Nanoseconds())/float64(res.N))
				f.allocs = res.AllocsPerOp()
				for unit, v := range res.Extra {
					// a case's own metrics (b.ReportMetric): figures
					// "case:unit"
					name := c.Name + ":" + unit
					x := out[i].Figs[name]
					if x == nil {
						x = &Figure{ok: true}
						out[i].Figs[name] = x
					}
					x.rounds = append(x.rounds, v)
				}
			}
		}
	}
	for _, r := range out {
		for _, f := range r.Figs {
			if len(f.rounds) == 0 {
				f.ok = false
				continue
			}
			v := slices.Clone(f.rounds)
			slices.Sort(v)
			f.ns = v[len(v)/2]
			if len(v)%2 == 0 {
				f.ns = (v[len(v)/2-1] + v[len(v)/2]) / 2
			}
		}
	}
	return out
}

// The targets of README (PostgreSQL over loopback, in-process store).
const (
	targetFirstHit  = 10.0 // plain/hit
	targetFindHit   = 5.0  // plain/hit
	targetMiss      = 1.10 // miss/plain
	targetWrite     = 1.05 // cached/plain
	targetHitAllocs = 10   // hit allocs − null-database allocs
	targetConsole   = 1.03 // hit with the console collecting / hit without
	targetRedisGet  = 1.3  // Redis-store hit / (null-database plain GORM + bare GET)
)

type Report struct {
	Title     string // the program, and the database
	Benchtime string
	Count     int
	DBs       []Results
	Null      Results
	Redis     []Results
}

func FmtNS(v float64) string {
	switch {
	case v == 0:
		return "—"
	case v >= 1e6:
		return fmt.Sprintf("%.2f ms", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f µs", v/1e3)
	}
	return fmt.Sprintf("%.0f ns", v)
}

// verdict says PASS or MISS for a PostgreSQL figure; the targets are
// PostgreSQL's.
func verdict(db string, ok bool) string {
	switch {
	case db != "postgres":
		return "(no target)"
	case ok:
		return "PASS"
	}
	return "MISS"
}

func (rep Report) Write(w io.Writer) {
	fmt.Fprintf(w, "%s; %s/%s, %d CPUs, %s; in-process store; medians of %d rounds of %s per case.\n\n",
		rep.Title, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), rep.Count, rep.Benchtime)
	fmt.Fprintln(w, "| database | case | plain | cached | ratio | in turn § | target | allocs/op plain → cached | result |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|---:|---|")
	for _, r := range rep.DBs {
		row := func(name, plainCase, cachedCase string, hit bool, target float64, paired string) {
			plain, cached := r.Get(plainCase), r.Get(cachedCase)
			var ratio float64
			var ok bool
			turn, pp, pc := "—", r.Get(paired+":plain-ns/op"), r.Get(paired+":cached-ns/op")
			inTurn := paired != "" && pp.ok && pc.ok && pp.ns > 0
			tgt := fmt.Sprintf("cached/plain ≤ %.2f", target)
			if hit {
				tgt = fmt.Sprintf("plain/cached ≥ %g×", target)
			}
			res := "FAILED"
			if plain.ok && cached.ok {
				if hit {
					ratio = plain.ns / cached.ns
					ok = ratio >= target
				} else {
					ratio = cached.ns / plain.ns
					ok = ratio <= target
				}
			}
			if inTurn {
				// the target is judged in turn, where the machine's load
				// weighs on both alike
				r := pc.ns / pp.ns
				turn, ok = fmt.Sprintf("%.2f×", r), r <= target
			}
			if plain.ok && cached.ok {
				res = verdict(r.Name, ok)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f× | %s | %s | %d → %d | %s |\n",
				r.Name, name, FmtNS(plain.ns), FmtNS(cached.ns), ratio, turn, tgt, plain.allocs, cached.allocs, res)
		}
		row("First by key, hit", "First/plain", "First/hit", true, targetFirstHit, "")
		row("Find 100 rows, hit", "Find100/plain", "Find100/hit", true, targetFindHit, "")
		row("First by key, miss †", "First/plain_inv", "First/miss", false, targetMiss, "First/miss_paired")
		row("Find 100 rows, miss †", "Find100/plain_inv", "Find100/miss", false, targetMiss, "Find100/miss_paired")
		row("Update by key ‡", "Write/plain", "Write/cached", false, targetWrite, "Write/paired")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "† every iteration a miss: Plugin.Invalidate of the table before each query; the plain figure makes the same call")
	fmt.Fprint(w, "  each iteration (it cannot affect the plain handle), so both carry its cost:")
	for _, r := range rep.DBs {
		fmt.Fprintf(w, " %s %s/op (%d allocs);", r.Name, FmtNS(r.Get("Invalidate").ns), r.Get("Invalidate").allocs)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "‡ db.Model(&BenchRow{ID: id}).Update(\"age\", n), in GORM's default transaction.")
	fmt.Fprintln(w, "§ the same two in turn, each call timed, the order swapped every other iteration (the Invalidate before a")
	fmt.Fprintln(w, "  miss not timed): the ratio of their times, which the target of a miss or a write is judged by.")
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Allocations of a hit against GORM's own work (GORM + database/sql over a null database that answers instantly")
	fmt.Fprintln(w, "with the driver values pgx returns for the same rows):")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| case | null db, plain GORM | null db, hit |")
	for _, r := range rep.DBs {
		fmt.Fprintf(w, " %s hit |", r.Name)
	}
	fmt.Fprintln(w, " extra allocs of a hit | target | result |")
	fmt.Fprintln(w, "|---|---:|---:|"+strings.Repeat("---:|", len(rep.DBs))+"---:|---|---|")
	allocRow := func(name, plainCase, hitCase string) {
		plain, hit := rep.Null.Get(plainCase), rep.Null.Get(hitCase)
		extra := hit.allocs - plain.allocs
		cols := ""
		for _, r := range rep.DBs {
			f := r.Get(hitCase)
			cols += fmt.Sprintf(" %d |", f.allocs)
			if f.allocs-plain.allocs > extra {
				extra = f.allocs - plain.allocs
			}
		}
		res := "PASS"
		if extra > targetHitAllocs {
			res = "MISS"
		}
		if !plain.ok || !hit.ok {
			res = "FAILED"
		}
		fmt.Fprintf(w, "| %s | %d (%s) | %d (%s) |%s %+d | ≤ +%d | %s |\n", name,
			plain.allocs, FmtNS(plain.ns), hit.allocs, FmtNS(hit.ns), cols, extra, targetHitAllocs, res)
	}
	allocRow("First by key", "First/plain", "First/hit")
	allocRow("Find 100 rows", "Find100/plain", "Find100/hit")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Extra allocs: a hit (on the null database, or on a measured database if more) minus plain GORM on the null database.")
	fmt.Fprintln(w)
	WriteConsole(w, append([]Results{rep.Null}, rep.DBs...))

	for _, r := range rep.Redis {
		rep.writeRedis(w, r)
	}
}

// writeRedis writes the table of a Redis-store environment. Its target is
// the issue's: a First hit within targetRedisGet of GORM's own work over the
// null database plus one bare GET of the entry's bytes, measured in turn
// (First/hit_get) so that the machine's load weighs on both alike.
func (rep Report) writeRedis(w io.Writer, r Results) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Shared store: the same %s table cached in Redis (store/redisstore, one client):\n", strings.TrimSuffix(r.Name, "+redis"))
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| case | plain GORM | Redis-store hit | bare GET of the entry | plain/hit | allocs plain → hit |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	for _, c := range []struct{ name, plain, hit string }{{"First by key", "First/plain", "First/hit"}, {"Find 100 rows", "Find100/plain", "Find100/hit"}} {
		plain, hit := r.Get(c.plain), r.Get(c.hit)
		getCol := "—"
		if get := r.Get("First/get"); c.plain == "First/plain" && get.ok {
			getCol = FmtNS(get.ns)
		}
		ratio := 0.0
		if hit.ns > 0 {
			ratio = plain.ns / hit.ns
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f× | %d → %d |\n", c.name, FmtNS(plain.ns), FmtNS(hit.ns), getCol, ratio, plain.allocs, hit.allocs)
	}
	hit, get, floor := r.Get("First/hit_get:hit-ns/op"), r.Get("First/hit_get:get-ns/op"), rep.Null.Get("First/plain")
	if !hit.ok || !get.ok || !floor.ok {
		return
	}
	ratio := hit.ns / (floor.ns + get.ns)
	res := "MISS"
	if ratio <= targetRedisGet {
		res = "PASS"
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "A `First` hit and a bare `GET` of another entry in turn, each timed (First/hit_get), against GORM's own work over the null database:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| Redis-store hit | bare GET | null db, plain GORM | hit / (null db + GET) | target | result |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---|---|")
	fmt.Fprintf(w, "| %s | %s | %s | %.2f× | ≤ %g× | %s |\n", FmtNS(hit.ns), FmtNS(get.ns), FmtNS(floor.ns), ratio, targetRedisGet, res)
}

// WriteConsole writes the table of the console's cost: First/hit against
// First/hit_console, per environment.
func WriteConsole(w io.Writer, rs []Results) {
	fmt.Fprintln(w, "The console's cost (package console collecting per-shape figures and sampling every second), on a First hit:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| database | hit, no console | hit, console collecting | collecting/not | median of the rounds' ratios | fastest rounds | target | allocs/op | result |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|---|---:|---|")
	for _, r := range rs {
		off, on := r.Get("First/hit"), r.Get("First/hit_console")
		res, ratio, paired := "FAILED", 0.0, 0.0
		fastest := "—"
		if p, f, ok := pairedRatio(off, on); ok && off.ok && on.ok && off.ns > 0 {
			ratio, paired, fastest = on.ns/off.ns, p, f
			res = "PASS"
			if paired > targetConsole {
				res = "MISS"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.3f× | %.3f× | %s | ≤ %.2f× | %d → %d | %s |\n", r.Name, FmtNS(off.ns), FmtNS(on.ns), ratio, paired, fastest, targetConsole, off.allocs, on.allocs, res)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The result is judged on the median of the rounds' ratios (both cases run one after the other in each round).")
	if rs[0].Figs["cpu/First/hit"] == nil {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "CPU time per hit of the thread running them (getrusage RUSAGE_THREAD: the time other processes had the core is not counted):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| database | hit, no console | hit, console collecting | collecting/not | median of the rounds' ratios | fastest rounds | target | result |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|---|---|")
	for _, r := range rs {
		off, on := r.Get("cpu/First/hit"), r.Get("cpu/First/hit_console")
		paired, fastest, ok := pairedRatio(off, on)
		if !ok {
			continue
		}
		res := "PASS"
		if paired > targetConsole {
			res = "MISS"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.3f× | %.3f× | %s | ≤ %.2f× | %s |\n", r.Name, FmtNS(off.ns), FmtNS(on.ns), on.ns/off.ns, paired, fastest, targetConsole, res)
	}
}

// pairedRatio returns the median over the rounds of on's figure over off's
// (each round runs both cases one after the other: the ratio of a round's
// pair is less exposed to the machine's slow spells) and the fastest round
// of each; ok is false unless both have the same rounds.
func pairedRatio(off, on Figure) (paired float64, fastest string, ok bool) {
	if len(off.rounds) == 0 || len(off.rounds) != len(on.rounds) {
		return 0, "", false
	}
	pairs := make([]float64, len(off.rounds))
	for i := range off.rounds {
		pairs[i] = on.rounds[i] / off.rounds[i]
	}
	return median(pairs), FmtNS(slices.Min(off.rounds)) + " → " + FmtNS(slices.Min(on.rounds)), true
}

// median returns the median of v (0 for none).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}
