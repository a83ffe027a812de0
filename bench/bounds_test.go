package bench

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdarasp/lambdarasp/protect"
)

// BenchmarkBounds is the time and memory of the largest events an
// attacker can send, with the default settings: each case is a payload of
// at most 6 MB (Lambda's synchronous limit), and states the verdict its
// bound gives. Run them alone, once each, with
//
//	go test -run '^$' -bench Bounds -benchtime 1x -benchmem ./bench/
//
// (bench/RESULTS.md records the table). make bench's table leaves them out.
func BenchmarkBounds(b *testing.B) {
	in, err := protect.NewInspector()
	if err != nil {
		b.Fatal(err)
	}
	const mb = 1 << 20
	cases := []struct {
		name  string
		event []byte
		// rule is the bound's finding the verdict must carry; 0: allowed.
		rule int
	}{
		// One string, 6 MB: inspected up to LAMBDARASP_MAX_VALUE_BYTES.
		{"6MB-one-value", apigwV2(query, longValueBody(6*mb-4096)), 100903},
		// Clean 1 KB orders up to 6 MB: LAMBDARASP_MAX_FIELDS values.
		{"6MB-many-values", apigwV2(query, bodyOf(6*mb-4096)), 100902},
		{"100k-deep", apigwV2(query, strings.Repeat("[", 100000)+strings.Repeat("]", 100000)), 100901},
		{"100k-wide", apigwV2(query, "["+strings.Repeat("1,", 99999)+"1]"), 100902},
		// SQS's largest batch: 10,000 records of 500 bytes (5 MB).
		{"sqs-10000-records", sqsSmall(10000), 0},
		// Random bytes, base64 in a JSON string: compressed-looking noise.
		{"1MB-base64-noise", apigwV2(query, noiseBody(mb-4096, 1)), 0},
		// The worst within the bounds: 6 MB of noise in values just under
		// LAMBDARASP_MAX_VALUE_BYTES, every byte inspected.
		{"6MB-base64-noise", apigwV2(query, noiseBody(mb-4096, 6)), 0},
	}
	for _, c := range cases {
		b.Run("bound="+c.name, func(b *testing.B) {
			var v protect.Verdict
			peak := peakHeap(func() { v = in.Inspect(c.event) })
			if c.rule == 0 && v.Action != protect.Allow {
				b.Fatalf("%d-byte event blocked: %v", len(c.event), v.Rules())
			}
			if c.rule != 0 && !slices.Contains(v.Rules(), c.rule) {
				b.Fatalf("%d-byte event: rules %v, want %d", len(c.event), v.Rules(), c.rule)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(c.event)))
			for b.Loop() {
				in.Inspect(c.event)
			}
			b.ReportMetric(float64(peak)/1e6, "peak-MB")
		})
	}
}

// peakHeap runs f and returns the most heap its objects took beyond what
// was live before, sampled every 100 µs with the collector set to run at
// 10% growth, so garbage does not pile up: an estimate of the memory an
// event needs, close to what a small function's limit must cover.
func peakHeap(f func()) uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	stop, peak := make(chan struct{}), make(chan uint64)
	go func() {
		var max uint64
		t := time.NewTicker(100 * time.Microsecond)
		defer t.Stop()
		for {
			if h := read(); h > max {
				max = h
			}
			select {
			case <-stop:
				peak <- max
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(stop)
	if m := <-peak; m > base {
		return m - base
	}
	return 0
}

// bodyOf is a JSON array of clean orders, n bytes or a little less.
func bodyOf(n int) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i := 0; ; i++ {
		o := order(i)
		if sb.Len()+len(o)+2 > n {
			break
		}
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(o)
	}
	sb.WriteByte(']')
	return sb.String()
}

// sqsSmall is an SQS event of n records with different short bodies.
func sqsSmall(n int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"Records":[`)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		body, _ := json.Marshal(fmt.Sprintf(`{"sku":"BK-%04d","qty":%d,"customer":"customer%d@example.com","note":"leave at the door"}`, i%9999, i%5+1, i))
		fmt.Fprintf(&sb, `{"messageId":"m%d","receiptHandle":"r%d","body":%s,"attributes":{"ApproximateReceiveCount":"1"},"messageAttributes":{},"eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:eu-west-1:123456789012:orders","awsRegion":"eu-west-1"}`, i, i, body)
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}

// noiseBody is a JSON body with k base64 strings of about n bytes of
// random data each.
func noiseBody(n, k int) string {
	r := rand.New(rand.NewPCG(1, 2))
	m := map[string]string{}
	for i := range k {
		raw := make([]byte, n*3/4)
		for j := range raw {
			raw[j] = byte(r.Uint32())
		}
		m[fmt.Sprint("file", i)] = base64.StdEncoding.EncodeToString(raw)
	}
	b, _ := json.Marshal(m)
	return string(b)
}
