package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decodeYAML decodes the configuration file b into cfg, refusing unknown
// fields. Its error names the line, the field and what was expected,
// never a value of the file: a token or a password written into a
// numeric, boolean or duration field, or given a type the field does not
// take, must not be copied to stderr and from there to a log collector.
// yaml.v3 quotes the value in a type error (up to 10 bytes, or the first
// 7 and "..."), and time.ParseDuration quotes it whole.
func decodeYAML(b []byte, cfg *Config) error {
	// The tree, to name the field of a type error; a file that does not
	// parse fails here, with the parser's message (which quotes nothing
	// of the file but what redactYAML takes out anyway).
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return errors.New(redactYAML(err.Error()))
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err := dec.Decode(cfg)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return errors.New(redactYAML(err.Error()))
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = describeYAMLError(&doc, m)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// yamlFieldError is the error of a field's own UnmarshalYAML (Duration):
// a *yaml.TypeError, so that the decoder goes on and reports every field,
// whose message decodeYAML completes with the field's name. why must not
// quote the value.
func yamlFieldError(n *yaml.Node, why string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %s", n.Line, n.Column, why)}}
}

// The messages of yaml.v3 (decode.go) that decodeYAML rewrites or keeps.
var (
	// terror: "line 3: cannot unmarshal !!str `hunter2` into int64"; the
	// Go type has no space.
	yamlTypeMismatch = regexp.MustCompile("(?s)^line ([0-9]+): cannot unmarshal (!!?[^ `]*).* into ([^ ]+)$")
	// yamlFieldError's.
	yamlFieldMessage = regexp.MustCompile(`^line ([0-9]+): column ([0-9]+): (.*)$`)
	// An unknown field, a key given twice: they quote a key of the file
	// (a field's name), not a value.
	yamlKeyMessage = regexp.MustCompile(`^line [0-9]+: (field [^ ]+ not found in type [^ ]+|mapping key "[^"]*" already defined at line [0-9]+)$`)
)

// describeYAMLError rewrites one message of a *yaml.TypeError without the
// value it quotes, naming the field found in doc at its line.
func describeYAMLError(doc *yaml.Node, msg string) string {
	if m := yamlTypeMismatch.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		where := "line " + m[1]
		if f := yamlField(doc, line, 0, m[2]); f != "" {
			where += ": " + f
		}
		return fmt.Sprintf("%s: %s expected, not %s", where, yamlWant(m[3]), yamlGot(m[2]))
	}
	if m := yamlFieldMessage.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		where := "line " + m[1]
		if f := yamlField(doc, line, col, ""); f != "" {
			where += ": " + f
		}
		return where + ": " + m[3]
	}
	if yamlKeyMessage.MatchString(msg) {
		return msg
	}
	return redactYAML(msg)
}

// yamlQuoted matches what a yaml.v3 message may quote of a file: `...`,
// "..." and '...'.
var yamlQuoted = regexp.MustCompile("`[^`]*`" + `|"(?:[^"\\]|\\.)*"|'[^']*'`)

// redactYAML takes every quoted part out of a message of yaml.v3 that
// decodeYAML does not know: the net under the rewrites above.
func redactYAML(msg string) string {
	msg = yamlQuoted.ReplaceAllString(msg, "")
	return strings.Join(strings.Fields(msg), " ")
}

// yamlField returns the path (caches.users.duration, etcd_endpoints[1])
// of the value at line (and col, unless 0) in doc whose short tag is tag
// (any if ""), or "" if there is none (the whole document). A key of a
// mapping is looked for when no value matches (a list or a mapping as a
// key), and named as its mapping's path and "key".
func yamlField(doc *yaml.Node, line, col int, tag string) string {
	match := func(n *yaml.Node) bool {
		return n.Line == line && (col == 0 || n.Column == col) && (tag == "" || n.ShortTag() == tag)
	}
	var walk func(n *yaml.Node, path string, keys bool) (string, bool)
	walk = func(n *yaml.Node, path string, keys bool) (string, bool) {
		var kids []*yaml.Node
		var paths []string
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p, ok := walk(c, path, keys); ok {
					return p, true
				}
			}
			return "", false
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if keys && match(k) {
					return strings.TrimSpace(path + " key"), true
				}
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				kids, paths = append(kids, n.Content[i+1]), append(paths, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				kids, paths = append(kids, c), append(paths, fmt.Sprintf("%s[%d]", path, i))
			}
		}
		for i, c := range kids {
			if match(c) {
				return paths[i], true
			}
			if p, ok := walk(c, paths[i], keys); ok {
				return p, true
			}
		}
		return "", false
	}
	if p, ok := walk(doc, "", false); ok {
		return p
	}
	p, _ := walk(doc, "", true)
	return p
}

// yamlWant says what a Go type of the configuration takes.
func yamlWant(goType string) string {
	switch strings.TrimPrefix(goType, "*") {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int64":
		return "an integer"
	case "float64":
		return "a number"
	case "main.Duration":
		return durationExpected
	case "[]string":
		return "a list of strings"
	case "map[string]string":
		return "a mapping of strings"
	case "map[string]main.CacheConfig", "main.Config", "main.CacheConfig", "main.OriginConfig",
		"main.PostgresConfig", "main.DacheConfig":
		return "a mapping"
	}
	return goType
}

// yamlGot says what a YAML tag is; a tag of the file's own (!secret) is
// not repeated.
func yamlGot(tag string) string {
	switch tag {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!timestamp":
		return "a timestamp"
	case "!!binary":
		return "binary data"
	}
	return "a value of another tag"
}

// durationExpected is what a Duration takes.
const durationExpected = `a duration such as "30s"`
