package waf

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"unsafe"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types/variables"
)

// compiledRule is a rule as Coraza compiled it: the same operator and
// transformation objects Coraza calls, read out of the WAF so the gate
// evaluates exactly what Coraza would.
//
// Coraza keeps these fields unexported (v3.8.1, internal/corazawaf.Rule).
// readRules reads them by reflection and fails, rather than guesses, when
// the layout is not the one it knows; the engine then has no fast path
// (see New).
type compiledRule struct {
	id, phase  int
	raw        string
	secMark    string
	tags       []string
	vars       []ruleVar
	trans      []plugintypes.Transformation
	transIDs   []uintptr // code pointer of each transformation: its identity
	op         plugintypes.Operator
	opName     string // "rx", "pm", … (without @)
	opData     string
	negated    bool
	actions    []string // action names, in order
	multiMatch bool
	capture    bool
	hasMsg     bool
	chain      *compiledRule
}

type ruleVar struct {
	v          variables.RuleVariable
	keyStr     string
	keyLower   string // strings.ToLower(keyStr)
	keyRx      *regexp.Regexp
	count      bool
	exceptions []ruleVarException
}

type ruleVarException struct {
	keyStr   string
	keyLower string // strings.ToLower(keyStr)
	keyRx    *regexp.Regexp
}

var errLayout = errors.New("unknown Coraza rule layout")

// readRules returns the rules of w in evaluation order.
func readRules(w coraza.WAF) (rules []*compiledRule, err error) {
	defer func() {
		// reflection on a layout we do not know panics; that is an error
		// here, never a crash.
		if r := recover(); r != nil {
			rules, err = nil, fmt.Errorf("%w: %v", errLayout, r)
		}
	}()
	wv := reflect.ValueOf(w)
	if wv.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: WAF is %s", errLayout, wv.Kind())
	}
	// wafWrapper{waf *corazawaf.WAF}; copy it to make it addressable.
	wc := reflect.New(wv.Type()).Elem()
	wc.Set(wv)
	inner := field(wc, "waf")
	group := field(inner.Elem(), "Rules")
	list := field(group, "rules")
	for i := 0; i < list.Len(); i++ {
		r, err := readRule(list.Index(i))
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func readRule(v reflect.Value) (*compiledRule, error) {
	meta := field(v, "RuleMetadata")
	r := &compiledRule{
		id:      int(field(meta, "ID_").Int()),
		phase:   int(field(meta, "Phase_").Int()),
		raw:     field(meta, "Raw_").String(),
		secMark: field(meta, "SecMark_").String(),
	}
	r.tags, _ = field(meta, "Tags_").Interface().([]string)
	vars := field(v, "variables")
	for i := 0; i < vars.Len(); i++ {
		p := vars.Index(i)
		rv := ruleVar{
			v:      variables.RuleVariable(field(p, "Variable").Uint()),
			keyStr: field(p, "KeyStr").String(),
			count:  field(p, "Count").Bool(),
		}
		rv.keyLower = strings.ToLower(rv.keyStr)
		rv.keyRx, _ = field(p, "KeyRx").Interface().(*regexp.Regexp)
		ex := field(p, "Exceptions")
		for j := 0; j < ex.Len(); j++ {
			e := ruleVarException{keyStr: field(ex.Index(j), "KeyStr").String()}
			e.keyLower = strings.ToLower(e.keyStr)
			e.keyRx, _ = field(ex.Index(j), "KeyRx").Interface().(*regexp.Regexp)
			rv.exceptions = append(rv.exceptions, e)
		}
		r.vars = append(r.vars, rv)
	}
	if op := field(v, "operator"); !op.IsNil() {
		o := op.Elem()
		var ok bool
		if r.op, ok = field(o, "Operator").Interface().(plugintypes.Operator); !ok {
			return nil, fmt.Errorf("%w: rule %d operator", errLayout, r.id)
		}
		r.opName = field(o, "Function").String()
		if len(r.opName) > 0 && r.opName[0] == '@' {
			r.opName = r.opName[1:]
		}
		r.opData = field(o, "Data").String()
		r.negated = field(o, "Negation").Bool()
	}
	ts := field(v, "transformations")
	for i := 0; i < ts.Len(); i++ {
		f := field(ts.Index(i), "Function")
		fn, ok := f.Interface().(plugintypes.Transformation)
		if !ok || fn == nil {
			return nil, fmt.Errorf("%w: rule %d transformation", errLayout, r.id)
		}
		r.trans = append(r.trans, fn)
		r.transIDs = append(r.transIDs, f.Pointer())
	}
	as := field(v, "actions")
	for i := 0; i < as.Len(); i++ {
		r.actions = append(r.actions, field(as.Index(i), "Name").String())
	}
	r.multiMatch = field(v, "MultiMatch").Bool()
	r.capture = field(v, "Capture").Bool()
	r.hasMsg = !field(v, "Msg").IsNil()
	if c := field(v, "Chain"); !c.IsNil() {
		child, err := readRule(c.Elem())
		if err != nil {
			return nil, err
		}
		r.chain = child
	}
	return r, nil
}

// field returns the named field of struct value v, readable even when it
// is unexported. v must be addressable.
func field(v reflect.Value, name string) reflect.Value {
	k := fieldKey{v.Type(), name}
	fieldMu.Lock()
	index, ok := fieldIndex[k]
	if !ok {
		if f, found := k.t.FieldByName(name); found {
			index = f.Index
			fieldIndex[k] = index
		}
	}
	fieldMu.Unlock()
	if index == nil {
		panic(fmt.Sprintf("no field %s in %s", name, v.Type()))
	}
	f := v.FieldByIndex(index)
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
}

// fieldIndex caches field lookups by name, which are slow and repeated for
// every rule.
var (
	fieldMu    sync.Mutex
	fieldIndex = map[fieldKey][]int{}
)

type fieldKey struct {
	t    reflect.Type
	name string
}
