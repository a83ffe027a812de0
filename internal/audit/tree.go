package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Bounds of the reader. CloudFormation itself takes templates of 1 MB at
// most (from S3), AWS CLI outputs are smaller.
const (
	MaxFileBytes = 1 << 20   // larger files are refused
	MaxDepth     = 64        // deeper nesting of maps and lists is refused
	MaxNodes     = 1_000_000 // values in one file, YAML aliases and SAM Globals expanded
)

// node is one value of a template or an API output, whatever it was
// written in: a map, a list, a scalar, or an intrinsic function (!Ref x
// and {"Ref": "x"} alike).
type node struct {
	kind nodeKind
	line int      // 1-based, 0 when unknown
	str  string   // scalar: its text; fn: the function's name without Fn:: or ! (Ref, GetAtt, Sub…)
	keys []string // mapping: its keys in order
	vals []*node  // mapping: the values of keys; list: the items; fn: its one argument
}

type nodeKind uint8

const (
	nullNode nodeKind = iota
	scalarNode
	mapNode
	listNode
	fnNode
)

// get follows keys through maps; nil when one is missing. Safe on nil.
func (n *node) get(keys ...string) *node {
	for _, k := range keys {
		if n == nil || n.kind != mapNode {
			return nil
		}
		var next *node
		for i, key := range n.keys {
			if key == k {
				next = n.vals[i]
			}
		}
		n = next
	}
	return n
}

// items is a list's items, or a single value as a list of one (IAM and
// CloudFormation accept both); nil for nothing.
func (n *node) items() []*node {
	switch {
	case n == nil || n.kind == nullNode:
		return nil
	case n.kind == listNode:
		return n.vals
	}
	return []*node{n}
}

// text is a scalar's text; "" for anything else.
func (n *node) text() string {
	if n == nil || n.kind != scalarNode {
		return ""
	}
	return n.str
}

// fn is the argument of intrinsic function name, or nil.
func (n *node) fn(name string) *node {
	if n == nil || n.kind != fnNode || n.str != name {
		return nil
	}
	return n.vals[0]
}

// parse reads a JSON or YAML document into a tree, within the bounds.
func parse(b []byte) (*node, error) {
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("%d bytes: larger than the %d bytes audit reads", len(b), MaxFileBytes)
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	// What starts as JSON is read as JSON, for JSON's error messages.
	if t := bytes.TrimSpace(b); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return parseJSON(t)
	}
	return parseYAML(b)
}

// parseJSON reads JSON with encoding/json's tokenizer, keeping lines.
func parseJSON(b []byte) (*node, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	r := &reader{}
	// The line of the next token: InputOffset is where the last one ended.
	last, lines := 0, 1
	line := func() int {
		off := int(d.InputOffset())
		for off < len(b) && bytes.IndexByte([]byte(" \t\r\n,:"), b[off]) >= 0 {
			off++
		}
		if off > last {
			lines += bytes.Count(b[last:off], []byte("\n"))
		}
		last = off
		return lines
	}
	var value func(depth int) (*node, error)
	value = func(depth int) (*node, error) {
		if depth > MaxDepth {
			return nil, fmt.Errorf("line %d: nested deeper than %d", line(), MaxDepth)
		}
		if err := r.count(); err != nil {
			return nil, err
		}
		ln := line()
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case json.Delim:
			n := &node{kind: listNode, line: ln}
			seen := map[string]bool{}
			if t == '{' {
				n.kind = mapNode
			}
			for d.More() {
				if n.kind == mapNode {
					k, err := d.Token()
					if err != nil {
						return nil, err
					}
					key, _ := k.(string)
					if seen[key] {
						return nil, fmt.Errorf("line %d: key %q repeated", line(), key)
					}
					seen[key] = true
					n.keys = append(n.keys, key)
				}
				v, err := value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.vals = append(n.vals, v)
			}
			if _, err := d.Token(); err != nil {
				return nil, err
			}
			return longForm(n), nil
		case nil:
			return &node{kind: nullNode, line: ln}, nil
		case string:
			return &node{kind: scalarNode, line: ln, str: t}, nil
		}
		return &node{kind: scalarNode, line: ln, str: fmt.Sprint(tok)}, nil
	}
	n, err := value(0)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return n, nil
}

// longForm turns {"Ref": x} and {"Fn::GetAtt": x} into function nodes.
func longForm(n *node) *node {
	if n.kind != mapNode || len(n.keys) != 1 {
		return n
	}
	k := n.keys[0]
	if k != "Ref" && !strings.HasPrefix(k, "Fn::") {
		return n
	}
	return &node{kind: fnNode, line: n.line, str: strings.TrimPrefix(k, "Fn::"), vals: n.vals}
}

// intrinsics are the short-form tags CloudFormation understands.
var intrinsics = map[string]bool{"!Ref": true, "!GetAtt": true, "!Sub": true, "!If": true, "!Equals": true, "!Not": true,
	"!And": true, "!Or": true, "!Join": true, "!Select": true, "!Split": true, "!FindInMap": true, "!Base64": true,
	"!Cidr": true, "!GetAZs": true, "!ImportValue": true, "!Condition": true, "!Transform": true, "!Length": true, "!ToJsonString": true}

// parseYAML reads one YAML document with goccy/go-yaml.
func parseYAML(b []byte) (n *node, err error) {
	// The parser's time grows quickly with flow nesting ([[[…, {a: {…):
	// refuse deep nesting before it runs.
	if d := flowDepth(b); d > MaxDepth {
		return nil, fmt.Errorf("brackets nested deeper than %d", MaxDepth)
	}
	f, err := parseBytes(b)
	if err != nil {
		// Without the source lines goccy quotes around the error: they can
		// hold a secret in plain text.
		return nil, errors.New(yaml.FormatError(err, false, false))
	}
	if len(f.Docs) != 1 {
		return nil, fmt.Errorf("%d YAML documents, want 1", len(f.Docs))
	}
	r := &reader{anchors: map[string]ast.Node{}}
	return r.yaml(f.Docs[0], 0)
}

// parseBytes runs the YAML parser, and reports a panic of the parser on
// hostile input as the file's error.
func parseBytes(b []byte) (f *ast.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("YAML parser failed: %v", p)
		}
	}()
	return parser.ParseBytes(b, 0)
}

// flowDepth is the deepest nesting of [ and { outside quotes and comments,
// an upper bound of the YAML's flow nesting.
func flowDepth(b []byte) int {
	depth, most := 0, 0
	var quote byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#':
			for i < len(b) && b[i] != '\n' {
				i++
			}
		case c == '[' || c == '{':
			depth++
			most = max(most, depth)
		case c == ']' || c == '}':
			depth = max(0, depth-1)
		case c == '\n':
			quote = 0
		}
	}
	return most
}

// reader converts goccy's AST, counting nodes so that aliases cannot
// expand without bound.
type reader struct {
	nodes   int
	anchors map[string]ast.Node
}

func (r *reader) count() error {
	r.nodes++
	if r.nodes > MaxNodes {
		return fmt.Errorf("more than %d values (YAML aliases expanded)", MaxNodes)
	}
	return nil
}

func lineOf(n ast.Node) int {
	if d, ok := n.(*ast.DocumentNode); ok && d.Body == nil {
		return 0 // its GetToken would dereference the missing body
	}
	if t := n.GetToken(); t != nil && t.Position != nil {
		return t.Position.Line
	}
	return 0
}

func (r *reader) yaml(n ast.Node, depth int) (*node, error) {
	if n == nil {
		return &node{kind: nullNode}, nil
	}
	if depth > MaxDepth {
		return nil, fmt.Errorf("line %d: nested deeper than %d", lineOf(n), MaxDepth)
	}
	if err := r.count(); err != nil {
		return nil, err
	}
	line := lineOf(n)
	switch n := n.(type) {
	case *ast.DocumentNode:
		return r.yaml(n.Body, depth)
	case *ast.AnchorNode:
		if n.Name != nil {
			r.anchors[n.Name.String()] = n.Value
		}
		return r.yaml(n.Value, depth)
	case *ast.AliasNode:
		if n.Value == nil {
			return nil, fmt.Errorf("line %d: alias without a name", line)
		}
		a, ok := r.anchors[n.Value.String()]
		if !ok {
			return nil, fmt.Errorf("line %d: alias *%s names no anchor", line, n.Value.String())
		}
		return r.yaml(a, depth+1)
	case *ast.MappingNode:
		return r.mapping(n.Values, line, depth)
	case *ast.MappingValueNode:
		return r.mapping([]*ast.MappingValueNode{n}, line, depth)
	case *ast.SequenceNode:
		out := &node{kind: listNode, line: line}
		for _, v := range n.Values {
			x, err := r.yaml(v, depth+1)
			if err != nil {
				return nil, err
			}
			out.vals = append(out.vals, x)
		}
		return out, nil
	case *ast.TagNode:
		tag := ""
		if n.Start != nil {
			tag = n.Start.Value
		}
		v, err := r.yaml(n.Value, depth+1)
		if err != nil {
			return nil, err
		}
		switch {
		case intrinsics[tag]:
			return &node{kind: fnNode, line: line, str: strings.TrimPrefix(tag, "!"), vals: []*node{v}}, nil
		case strings.HasPrefix(tag, "!!"):
			return v, nil // a YAML core tag: !!str, !!int…
		}
		return nil, fmt.Errorf("line %d: tag %s is not a CloudFormation intrinsic function", line, tag)
	case *ast.NullNode:
		return &node{kind: nullNode, line: line}, nil
	case *ast.StringNode:
		return &node{kind: scalarNode, line: line, str: n.Value}, nil
	case *ast.LiteralNode:
		s := ""
		if n.Value != nil {
			s = n.Value.Value
		}
		return &node{kind: scalarNode, line: line, str: s}, nil
	case ast.ScalarNode:
		s := ""
		if t := n.GetToken(); t != nil {
			s = t.Value
		}
		return &node{kind: scalarNode, line: line, str: s}, nil
	}
	return nil, fmt.Errorf("line %d: %s not expected here", line, n.Type())
}

func (r *reader) mapping(values []*ast.MappingValueNode, line, depth int) (*node, error) {
	out := &node{kind: mapNode, line: line}
	seen := map[string]bool{}
	var merges []*node
	for _, mv := range values {
		if mv == nil || mv.Key == nil {
			continue
		}
		v, err := r.yaml(mv.Value, depth+1)
		if err != nil {
			return nil, err
		}
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			merges = append(merges, v.items()...)
			continue
		}
		key := ""
		if t := mv.Key.GetToken(); t != nil {
			key = t.Value
		}
		if seen[key] {
			return nil, fmt.Errorf("line %d: key %q repeated", lineOf(mv.Key), key)
		}
		seen[key] = true
		out.keys = append(out.keys, key)
		out.vals = append(out.vals, v)
	}
	for _, m := range merges { // <<: *base adds the keys the mapping lacks
		if m.kind != mapNode {
			return nil, fmt.Errorf("line %d: merge key << needs a mapping", line)
		}
		for i, k := range m.keys {
			if !seen[k] {
				seen[k] = true
				out.keys = append(out.keys, k)
				out.vals = append(out.vals, m.vals[i])
			}
		}
	}
	return longForm(out), nil
}
