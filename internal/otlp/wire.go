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

// Double writes a double field; zero is left out.
func (b *Buf) Double(num protowire.Number, v float64) {
	if v == 0 {
		return
	}
	b.Fixed64(num, math.Float64bits(v))
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

// Str writes the attribute key=v as field num (a KeyValue).
func (b *Buf) Str(num protowire.Number, key, v string) {
	m := b.Begin(num)
	b.String(kvKey, key)
	a := b.Begin(kvValue)
	b.B = protowire.AppendTag(b.B, anyString, protowire.BytesType)
	b.B = protowire.AppendString(b.B, v)
	b.End(a)
	b.End(m)
}

// Int writes the attribute key=v as field num.
func (b *Buf) Int(num protowire.Number, key string, v int64) {
	m := b.Begin(num)
	b.String(kvKey, key)
	a := b.Begin(kvValue)
	b.B = protowire.AppendTag(b.B, anyInt, protowire.VarintType)
	b.B = protowire.AppendVarint(b.B, uint64(v))
	b.End(a)
	b.End(m)
}

// Bool writes the attribute key=v as field num.
func (b *Buf) Bool(num protowire.Number, key string, v bool) {
	m := b.Begin(num)
	b.String(kvKey, key)
	a := b.Begin(kvValue)
	b.B = protowire.AppendTag(b.B, anyBool, protowire.VarintType)
	b.B = protowire.AppendVarint(b.B, protowire.EncodeBool(v))
	b.End(a)
	b.End(m)
}

// Float writes the attribute key=v as field num.
func (b *Buf) Float(num protowire.Number, key string, v float64) {
	m := b.Begin(num)
	b.String(kvKey, key)
	a := b.Begin(kvValue)
	b.B = protowire.AppendTag(b.B, anyDouble, protowire.Fixed64Type)
	b.B = protowire.AppendFixed64(b.B, math.Float64bits(v))
	b.End(a)
	b.End(m)
}

// Ints writes the attribute key=[v…] (an array of ints) as field num.
func (b *Buf) Ints(num protowire.Number, key string, v []int) {
	m := b.Begin(num)
	b.String(kvKey, key)
	a := b.Begin(kvValue)
	arr := b.Begin(anyArray)
	for _, x := range v {
		e := b.Begin(arrayValues)
		b.B = protowire.AppendTag(b.B, anyInt, protowire.VarintType)
		b.B = protowire.AppendVarint(b.B, uint64(int64(x)))
		b.End(e)
	}
	b.End(arr)
	b.End(a)
	b.End(m)
}
