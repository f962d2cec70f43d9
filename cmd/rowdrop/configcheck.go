package main

// Strict configuration: the config file is read once more through
// yaml.v3's node API, which knows every key's line, and every key and value
// is checked against the settings table before anything runs. viper would
// ignore an unknown key (`exlude:`) and read a bad value (`debounce: fast`)
// as zero; both are mistakes the user must hear about. Flags and ROWDROP_*
// variables get the same value checks.

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cast"
	"go.yaml.in/yaml/v3"
)

// maxProblems caps the problems one message lists: the first few are
// enough to start fixing.
const maxProblems = 5

// configProblems collects the mistakes found in one config file.
type configProblems struct {
	file string
	list []string
}

func (p *configProblems) add(line int, format string, a ...any) {
	p.list = append(p.list, fmt.Sprintf("line %d: %s", line, fmt.Sprintf(format, a...)))
}

func (p *configProblems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	list := p.list
	more := ""
	if len(list) > maxProblems {
		more = fmt.Sprintf("; and %d more", len(list)-maxProblems)
		list = list[:maxProblems]
	}
	return usagef("config file %s: %s%s (fix the file; configs/rowdrop.yaml lists every key)", p.file, strings.Join(list, "; "), more)
}

// fileSettings is what checkConfigFile learnt besides the problems: the
// top-level folder (as written), which the shared-folder check needs
// without the flags' and environment's overrides.
type fileSettings struct {
	folder string
}

// checkConfigFile checks the YAML file path: syntax (with the line of the
// mistake), keys at the top level and in `databases:` entries (with the
// nearest valid key), and every value against its setting's kind.
func checkConfigFile(path string) (fileSettings, error) {
	var info fileSettings
	data, err := os.ReadFile(path)
	if err != nil {
		return info, usagef("config file %s: %v (fix the path, or pass --config with another one)", path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return info, usagef("config file %s: %s (fix the file, or pass --config with another one)", path, yamlError(data, err))
	}
	p := &configProblems{file: path}
	if len(doc.Content) == 0 {
		return info, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return info, nil
	}
	if root.Kind != yaml.MappingNode {
		p.add(root.Line, "the file must be a mapping of keys (folder: DIR, databases: [...]), not %s", nodeKind(root))
		return info, p.err()
	}
	top, perDB := map[string]setting{}, map[string]setting{}
	for _, s := range settings {
		if s.key == "config" {
			continue // a config file cannot name another one
		}
		top[s.key] = s
		if s.perDB {
			perDB[s.key] = s
		}
	}
	seen := map[string]int{}
	for _, kv := range pairsOf(root) {
		k, v := kv.k, kv.v
		if first, dup := seen[k.Value]; dup && !kv.merged {
			p.add(k.Line, "%s: is given twice (also on line %d)", k.Value, first)
			continue
		}
		if !kv.merged {
			seen[k.Value] = k.Line
		}
		if strings.HasPrefix(k.Value, "x-") {
			continue // an extension field, as in Compose files: holds anchors (&name) for entries
		}
		if k.Value == "databases" {
			checkEntries(p, deref(v), perDB, top)
			continue
		}
		s, ok := top[k.Value]
		if !ok {
			if k.Value == "config" {
				p.add(k.Line, "config: has no effect inside a config file (pass --config or set ROWDROP_CONFIG)")
				continue
			}
			hint := suggest(k.Value, append(keys(top), "databases"))
			if hint == "" && v.Anchor != "" {
				hint = " (a key that only holds an anchor must start with x-)"
			}
			p.add(k.Line, "unknown key %q%s", k.Value, hint)
			continue
		}
		checkValue(p, s, v)
		if s.key == "folder" && v.Kind == yaml.ScalarNode {
			info.folder = v.Value
		}
	}
	return info, p.err()
}

// checkEntries checks the `databases:` list: a sequence of mappings whose
// keys are db and the per-database settings.
func checkEntries(p *configProblems, list *yaml.Node, perDB, top map[string]setting) {
	if list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		return
	}
	if list.Kind != yaml.SequenceNode {
		p.add(list.Line, "databases: must be a list of entries (- db: PATH, folder: DIR), not %s", nodeKind(list))
		return
	}
	valid := append(keys(perDB), "db")
	for n, e := range list.Content {
		e = deref(e)
		if e.Kind != yaml.MappingNode {
			p.add(e.Line, "entry %d of databases: must be a mapping (db: PATH, folder: DIR), not %s", n+1, nodeKind(e))
			continue
		}
		seen := map[string]int{}
		hasDB := false
		for _, kv := range pairsOf(e) {
			k, v := kv.k, kv.v
			if first, dup := seen[k.Value]; dup && !kv.merged {
				p.add(k.Line, "%s: is given twice in entry %d of databases: (also on line %d)", k.Value, n+1, first)
				continue
			}
			if !kv.merged {
				seen[k.Value] = k.Line
			}
			if k.Value == "db" {
				hasDB = true
				if v.Kind != yaml.ScalarNode {
					p.add(v.Line, "db: must be the path of the app's SQLite file, not %s", nodeKind(v))
				}
				continue
			}
			s, ok := perDB[k.Value]
			if !ok {
				if _, global := top[k.Value]; global {
					p.add(k.Line, "%s cannot be set per database (set it at the top level of the file)", k.Value)
				} else {
					p.add(k.Line, "unknown key %q in entry %d of databases:%s", k.Value, n+1, suggest(k.Value, valid))
				}
				continue
			}
			checkValue(p, s, v)
		}
		if !hasDB {
			p.add(e.Line, "entry %d of databases: has no db: (the path of the app's SQLite file)", n+1)
		}
	}
}

// checkValue checks one value against its setting's kind.
func checkValue(p *configProblems, s setting, v *yaml.Node) {
	v = deref(v)
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return // key: with nothing after it, as if absent
	}
	switch s.kind {
	case kindList:
		if v.Kind == yaml.SequenceNode {
			for _, e := range v.Content {
				if e = deref(e); e.Kind != yaml.ScalarNode {
					p.add(e.Line, "%s: every item must be a name, not %s", s.key, nodeKind(e))
				}
			}
			return
		}
	case kindMap:
		if v.Kind != yaml.MappingNode {
			p.add(v.Line, "%s: must be a mapping (name: value), not %s", s.key, nodeKind(v))
			return
		}
		for i := 1; i < len(v.Content); i += 2 {
			if e := deref(v.Content[i]); e.Kind != yaml.ScalarNode {
				p.add(e.Line, "%s: %s: must be a single value, not %s", s.key, v.Content[i-1].Value, nodeKind(e))
			}
		}
		return
	case kindMapList:
		if v.Kind != yaml.MappingNode {
			p.add(v.Line, "%s: must be a mapping (table: [columns]), not %s", s.key, nodeKind(v))
			return
		}
		for i := 1; i < len(v.Content); i += 2 {
			e := deref(v.Content[i])
			items := []*yaml.Node{e}
			if e.Kind == yaml.SequenceNode {
				items = e.Content
			}
			for _, it := range items {
				if it = deref(it); it.Kind != yaml.ScalarNode {
					p.add(it.Line, "%s: %s: must be a list of column names, not %s", s.key, v.Content[i-1].Value, nodeKind(it))
				}
			}
		}
		return
	}
	if v.Kind != yaml.ScalarNode {
		p.add(v.Line, "%s: must be a single value, not %s", s.key, nodeKind(v))
		return
	}
	if msg := badValue(s, v.Value); msg != "" {
		p.add(v.Line, "%s: %q %s", s.key, v.Value, msg)
	}
}

// badValue says what is wrong with raw as a value of s ("" if nothing):
// the same rules for the file, flags and the environment.
func badValue(s setting, raw string) string {
	switch s.kind {
	case kindBool, kindNegatedBool:
		if _, err := strconv.ParseBool(raw); err != nil {
			return "is not true or false"
		}
	case kindDuration:
		d, err := cast.ToDurationE(raw)
		if err != nil {
			return "is not a duration (write it like 300ms, 5s, 10m or 168h)"
		}
		if d < 0 && !s.negOK {
			return "is negative"
		}
	case kindInt:
		n, err := cast.ToInt64E(raw)
		if err != nil {
			return "is not a whole number"
		}
		if n < 0 {
			return "is negative"
		}
	case kindDays:
		if _, err := parseHorizon(raw); err != nil {
			return fmt.Sprintf("is not a positive duration: %v (write it like 30d or 720h)", err)
		}
	}
	return ""
}

// checkGiven checks the values of the flags given (setting key to value)
// and of the ROWDROP_* variables set.
func checkGiven(given map[string]string) error {
	var problems []string
	for _, s := range settings {
		if val, ok := given[s.key]; ok {
			if msg := badValue(s, val); msg != "" {
				problems = append(problems, fmt.Sprintf("--%s %s %s", s.flag, val, msg))
			}
			continue
		}
		env := "ROWDROP_" + strings.ToUpper(s.key)
		if val := os.Getenv(env); val != "" && s.kind != kindMap && s.kind != kindMapList {
			if msg := badValue(s, val); msg != "" {
				problems = append(problems, fmt.Sprintf("%s=%s (setting %s) %s", env, val, s.key, msg))
			}
		}
	}
	if len(problems) > 0 {
		return usagef("%s", strings.Join(problems, "; "))
	}
	return nil
}

// yamlLine is how yaml.v3 starts a message that names a line.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError renders a YAML syntax error with the line of the mistake.
// yaml.v3 names the line where the enclosing block or flow collection
// starts (its context mark), often lines above the mistake; the first
// prefix of the file that fails with the same message ends at the line of
// the mistake.
func yamlError(data []byte, err error) string {
	msg := oneLine(err.Error())
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return strings.TrimPrefix(msg, "yaml: ")
	}
	reported, what := m[1], m[2]
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) <= 2000 {
		for k := 1; k <= len(lines); k++ {
			var n yaml.Node
			e := yaml.Unmarshal([]byte(strings.Join(lines[:k], "")), &n)
			if e == nil {
				continue
			}
			if pm := yamlLine.FindStringSubmatch(oneLine(e.Error())); pm != nil && pm[2] == what {
				if line := strconv.Itoa(k); line != reported {
					return fmt.Sprintf("line %s: %s (in the block that starts on line %s)", line, what, reported)
				}
				break
			}
		}
	}
	return fmt.Sprintf("line %s: %s", reported, what)
}

// deref follows a YAML alias (*name) to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// kvPair is one key and its value in a mapping; merged: it comes from a
// map merged in with `<<:`, where an explicit key may override it.
type kvPair struct {
	k, v   *yaml.Node
	merged bool
}

// pairsOf returns the key/value pairs of mapping m, with the pairs of maps
// merged in by `<<: *anchor` (or `<<: [*a, *b]`) in their place, so each
// key is checked where it takes effect.
func pairsOf(m *yaml.Node) []kvPair {
	var out []kvPair
	var walk func(m *yaml.Node, depth int)
	walk = func(m *yaml.Node, depth int) {
		for i := 0; i+1 < len(m.Content) && depth < 20; i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			if k.Tag != "!!merge" {
				out = append(out, kvPair{k, v, depth > 0})
				continue
			}
			v = deref(v)
			srcs := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				srcs = v.Content
			}
			for _, src := range srcs {
				if src = deref(src); src.Kind == yaml.MappingNode {
					walk(src, depth+1)
				}
			}
		}
	}
	walk(m, 0)
	return out
}

// nodeKind names a node's kind for messages.
func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("the value %q", n.Value)
}

func keys(m map[string]setting) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// suggest returns ` (did you mean "k"?)` for the valid key nearest to key,
// or "" when none is close: flags' spelling (local-columns) and case are
// forgiven first, then a few typed letters.
func suggest(key string, valid []string) string {
	norm := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	best, bestDist := "", -1
	for _, v := range valid {
		d := editDistance(norm, v)
		if bestDist < 0 || d < bestDist || (d == bestDist && v < best) {
			best, bestDist = v, d
		}
	}
	if bestDist < 0 || bestDist > max(2, len(norm)/3) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b, with a swap of two
// neighbouring letters counting as one edit (exlcude -> exclude).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
