package readmetest

// TestREADMESnippets checks every ```go block of README.md. The line just
// before a block's opening fence (an HTML comment, so GitHub does not show
// it) says how:
//
//	<!-- snippet: copy of examples/quickstart/main.go -->
//
// The block is a verbatim copy of consecutive lines of that file (a path
// from the repository's root), which go vet and go test compile: the test
// fails when the block is not found there.
//
//	<!-- snippet: func(db *gorm.DB, p *plugin.Plugin, ctx context.Context) error -->
//
// The block is the body of a function of that signature, compiled with the
// module by go build (through -overlay: nothing is written to the tree).
// Its imports are the packages of the table imports below whose names it
// uses; the application's own types (User, Report…) are declared in
// testdata/app.go. A variable the body declares and does not use is not
// an error (a snippet shows a call and its results), and a body of a
// function with results need not end in a return. A compile error is
// reported at its README.md line.
//
// A ```go block with no such line, or with another one, fails the test.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
)

// imports are the packages a snippet may use, by the name it uses them by.
var imports = map[string]string{
	"context":    "context",
	"errors":     "errors",
	"fmt":        "fmt",
	"http":       "net/http",
	"log":        "log",
	"slog":       "log/slog",
	"time":       "time",
	"gorm":       "gorm.io/gorm",
	"postgres":   "gorm.io/driver/postgres",
	"mysql":      "gorm.io/driver/mysql",
	"sqlite":     "github.com/glebarez/sqlite",
	"dbresolver": "gorm.io/plugin/dbresolver",
	"redis":      "github.com/redis/go-redis/v9",
	"plugin":     "github.com/gormcache/gormcache/plugin",
	"lowlevel":   "github.com/gormcache/gormcache/lowlevel",
	"viewcache":  "github.com/gormcache/gormcache/viewcache",
	"pgnotify":   "github.com/gormcache/gormcache/pgnotify",
	"pgrepl":     "github.com/gormcache/gormcache/pgrepl",
	"store":      "github.com/gormcache/gormcache/store",
	"memstore":   "github.com/gormcache/gormcache/store/memstore",
	"redisstore": "github.com/gormcache/gormcache/store/redisstore",
	"tiered":     "github.com/gormcache/gormcache/store/tiered",
	"gcotel":     "github.com/gormcache/gormcache/tracing/gcotel",
	"console":    "github.com/gormcache/gormcache/console",
}

// snippetPkg is the import path the snippets are compiled as. The
// directory does not exist: go build sees it through -overlay.
const snippetPkg = "internal/readmetest/snippets"

type block struct {
	line  int    // README.md line of the block's first line of code
	how   string // what the snippet comment says, "" without one
	lines []string
}

var (
	fence   = regexp.MustCompile("^```")
	snippet = regexp.MustCompile(`^<!-- snippet: (.*) -->$`)
)

func readmeBlocks(t *testing.T, path string) []block {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks []block
		cur    *block
		prev   string
		n      int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		l := sc.Text()
		switch {
		case cur != nil && fence.MatchString(l):
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, l)
		case l == "```go":
			cur = &block{line: n + 1}
			if m := snippet.FindStringSubmatch(prev); m != nil {
				cur.how = m[1]
			}
		}
		prev = l
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("README.md:%d: a ```go block that does not end", cur.line-1)
	}
	return blocks
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("no go.mod two levels up from the test: %v", err)
	}
	return dir
}

func TestREADMESnippets(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	blocks := readmeBlocks(t, filepath.Join(root, "README.md"))
	if len(blocks) == 0 {
		t.Fatal("no ```go blocks in README.md")
	}
	overlay := map[string]string{
		filepath.Join(root, snippetPkg, "app.go"): mustAbs(t, filepath.Join("testdata", "app.go")),
	}
	tmp := t.TempDir()
	compiled := 0
	for _, b := range blocks {
		switch {
		case strings.HasPrefix(b.how, "copy of "):
			checkCopy(t, root, b, strings.TrimPrefix(b.how, "copy of "))
		case strings.HasPrefix(b.how, "func("):
			src, err := wrap(b)
			if err != nil {
				t.Error(err)
				continue
			}
			name := fmt.Sprintf("readme_%d.go", b.line)
			if err := os.WriteFile(filepath.Join(tmp, name), src, 0o644); err != nil {
				t.Fatal(err)
			}
			overlay[filepath.Join(root, snippetPkg, name)] = filepath.Join(tmp, name)
			compiled++
		case b.how == "":
			t.Errorf("README.md:%d: a ```go block with no <!-- snippet: … --> line before it (see %s)", b.line-1, "internal/readmetest/readme_test.go")
		default:
			t.Errorf("README.md:%d: snippet line %q: want \"copy of PATH\" or \"func(…)\"", b.line-2, b.how)
		}
	}
	if compiled == 0 {
		return
	}
	js, err := json.Marshal(map[string]any{"Replace": overlay})
	if err != nil {
		t.Fatal(err)
	}
	ov := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(ov, js, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"build"}, testdb.BuildFlags()...)
	args = append(args, "-overlay="+ov, "./"+snippetPkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOPROXY=off", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("README.md's snippets do not compile (go %s):\n%s", strings.Join(args, " "), out)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// checkCopy fails unless b's lines stand, in order and together, in the
// file at path (from root).
func checkCopy(t *testing.T, root string, b block, path string) {
	t.Helper()
	if !strings.HasSuffix(path, ".go") {
		t.Errorf("README.md:%d: copy of %s: not a Go file, so nothing compiles it", b.line-2, path)
		return
	}
	src, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Errorf("README.md:%d: copy of %s: %v", b.line-2, path, err)
		return
	}
	want := strings.Join(b.lines, "\n") + "\n"
	if !bytes.Contains(append([]byte("\n"), src...), []byte("\n"+want)) {
		t.Errorf("README.md:%d: the block is not a verbatim copy of lines of %s (copy it again from there)", b.line, path)
	}
}

// wrap returns the Go file that compiles b as the body of a function of
// the signature b.how.
func wrap(b block) ([]byte, error) {
	sig := fmt.Sprintf("func readme%d", b.line) + strings.TrimPrefix(b.how, "func")
	body := fmt.Sprintf("//line README.md:%d\n", b.line) + strings.Join(b.lines, "\n")
	fset := token.NewFileSet()
	probe := "package snippets\n\n" + sig + " {\n" + body + "\n}\n"
	f, err := parser.ParseFile(fset, "snippet.go", probe, 0)
	if err != nil {
		return nil, err
	}
	fn := f.Decls[0].(*ast.FuncDecl)

	// The packages it names (a name it also declares is not a package).
	used := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if se, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := se.X.(*ast.Ident); ok {
				used[id.Name] = true
			}
		}
		return true
	})
	declared := declaredNames(fn)
	var paths []string
	for name := range used {
		if p, ok := imports[name]; ok && !declared[name] {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)

	var out strings.Builder
	out.WriteString("package snippets\n\n")
	for _, p := range paths {
		fmt.Fprintf(&out, "import %q\n", p)
	}
	out.WriteString("\n" + sig + " {\n")
	out.WriteString(body + "\n")
	var names []string
	for name := range declared {
		if name != "_" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&out, "\t_ = %s\n", name)
	}
	if fn.Type.Results != nil && len(fn.Type.Results.List) > 0 {
		out.WriteString("\tpanic(\"end of the snippet\")\n")
	}
	out.WriteString("}\n")
	return []byte(out.String()), nil
}

// declaredNames are the variables the function body declares at its top
// level (:= and var).
func declaredNames(fn *ast.FuncDecl) map[string]bool {
	names := map[string]bool{}
	for _, st := range fn.Body.List {
		switch st := st.(type) {
		case *ast.AssignStmt:
			if st.Tok == token.DEFINE {
				for _, e := range st.Lhs {
					if id, ok := e.(*ast.Ident); ok {
						names[id.Name] = true
					}
				}
			}
		case *ast.DeclStmt:
			if g, ok := st.Decl.(*ast.GenDecl); ok && g.Tok == token.VAR {
				for _, s := range g.Specs {
					for _, id := range s.(*ast.ValueSpec).Names {
						names[id.Name] = true
					}
				}
			}
		}
	}
	return names
}
