package otlp

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Buf is a protobuf message being written. Nested messages are opened
// with Begin and closed with End, which writes their length in front.
type Buf struct {
	B []byte
}

// Begin opens the nested message of field num; End(mark) closes it.
func (b *Buf) Begin(num protowire.Number) int {
	b.B = protowire.AppendTag(b.B, num, protowire.BytesType)
	b.B = append(b.B, 0) // the length, one byte until End knows better
	return len(b.B)
}

// End closes the nested message opened at mark.
func (b *Buf) End(mark int) {
	n := len(b.B) - mark
	size := protowire.SizeVarint(uint64(n))
	if size > 1 {
		b.B = append(b.B, make([]byte, size-1)...)
		copy(b.B[mark+size-1:], b.B[mark:mark+n])
	}
	protowire.AppendVarint(b.B[:mark-1], uint64(n))
}

// String writes a string field; an empty one is left out, as proto3 does.
func (b *Buf) String(num protowire.Number, s string) {
	if s == "" {
		return
	}
	b.B = protowire.AppendTag(b.B, num, protowire.BytesType)
	b.B = protowire.AppendString(b.B, s)
}

// Bytes writes a bytes field, even empty.
func (b *Buf) Bytes(num protowire.Number, v []byte) {
	b.B = protowire.AppendTag(b.B, num, protowire.BytesType)
	b.B = protowire.AppendBytes(b.B, v)
}

// Raw appends an already encoded field or fields.
func (b *Buf) Raw(v []byte) { b.B = append(b.B, v...) }

// Varint writes a varint field (uint32, uint64, int64, enum, bool);
// zero is left out.
func (b *Buf) Varint(num protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	b.B = protowire.AppendTag(b.B, num, protowire.VarintType)
	b.B = protowire.AppendVarint(b.B, v)
}

// Fixed64 writes a fixed64 field (timestamps, counts); zero is left out.
func (b *Buf) Fixed64(num protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	b.B = protowire.AppendTag(b.B, num, protowire.Fixed64Type)
	b.B = protowire.AppendFixed64(b.B, v)
}

// Fixed32 writes a fixed32 field (span flags); zero is left out.
func (b *Buf) Fixed32(num protowire.Number, v uint32) {
	if v == 0 {
		return
	}
	b.B = protowire.AppendTag(b.B, num, protowire.Fixed32Type)
	b.B = protowire.AppendFixed32(b.B, v)
}

// Attribute field numbers: KeyValue (key 1, value 2) and AnyValue.
const (
	kvKey        = 1
	kvValue      = 2
	anyString    = 1
	anyBool      = 2
	anyInt       = 3
	anyDouble    = 4
	anyArray     = 5
	arrayValues  = 1
	resourceAttr = 1
)

// attr opens the KeyValue key as field num and its AnyValue; the caller
// writes the value's one field, then closes both with endAttr.
func (b *Buf) attr(num protowire.Number, key string) (kv, val int) {
	kv = b.Begin(num)
	b.String(kvKey, key)
	return kv, b.Begin(kvValue)
}

func (b *Buf) endAttr(kv, val int) {
	b.End(val)
	b.End(kv)
}

// Str writes the attribute key=v as field num (a KeyValue).
func (b *Buf) Str(num protowire.Number, key, v string) {
	kv, val := b.attr(num, key)
	b.B = protowire.AppendTag(b.B, anyString, protowire.BytesType)
	b.B = protowire.AppendString(b.B, v)
	b.endAttr(kv, val)
}

// Int writes the attribute key=v as field num.
func (b *Buf) Int(num protowire.Number, key string, v int64) {
	kv, val := b.attr(num, key)
	b.B = protowire.AppendTag(b.B, anyInt, protowire.VarintType)
	b.B = protowire.AppendVarint(b.B, uint64(v))
	b.endAttr(kv, val)
}

// Bool writes the attribute key=v as field num.
func (b *Buf) Bool(num protowire.Number, key string, v bool) {
	kv, val := b.attr(num, key)
	b.B = protowire.AppendTag(b.B, anyBool, protowire.VarintType)
	b.B = protowire.AppendVarint(b.B, protowire.EncodeBool(v))
	b.endAttr(kv, val)
}

// Float writes the attribute key=v as field num.
func (b *Buf) Float(num protowire.Number, key string, v float64) {
	kv, val := b.attr(num, key)
	b.B = protowire.AppendTag(b.B, anyDouble, protowire.Fixed64Type)
	b.B = protowire.AppendFixed64(b.B, math.Float64bits(v))
	b.endAttr(kv, val)
}

// Ints writes the attribute key=[v…] (an array of ints) as field num.
func (b *Buf) Ints(num protowire.Number, key string, v []int) {
	kv, val := b.attr(num, key)
	arr := b.Begin(anyArray)
	for _, x := range v {
		e := b.Begin(arrayValues)
		b.B = protowire.AppendTag(b.B, anyInt, protowire.VarintType)
		b.B = protowire.AppendVarint(b.B, uint64(int64(x)))
		b.End(e)
	}
	b.End(arr)
	b.endAttr(kv, val)
}

// Envelope opens the frame every OTLP export request shares, whatever
// its signal: Resource{Spans,Metrics,Logs} (field 1) holding the
// resource (pre-encoded by Resource) and Scope{Spans,Metrics,Logs}
// (field 2) holding the instrumentation scope. The caller writes the
// items (spans, metrics, log records: field 2), then EndEnvelope.
func (b *Buf) Envelope(resource []byte, scope string) [2]int {
	outer := b.Begin(1)
	b.Raw(resource)
	inner := b.Begin(2)
	sc := b.Begin(1)
	b.String(1, scope)
	b.End(sc)
	return [2]int{outer, inner}
}

// EndEnvelope closes what Envelope opened.
func (b *Buf) EndEnvelope(m [2]int) {
	b.End(m[1])
	b.End(m[0])
}

// Resource encodes attrs as the resource field of an envelope.
func Resource(attrs [][2]string) []byte {
	var b Buf
	m := b.Begin(1)
	for _, kv := range attrs {
		b.Str(resourceAttr, kv[0], kv[1])
	}
	b.End(m)
	return b.B
}
