package anomaly

import (
	"fmt"
	"time"

	"github.com/lambdarasp/lambdarasp/internal/report"
)

// durationDetector: a sustained slow-down against a robust baseline.
type durationDetector struct {
	base   samples
	slow   flags // of the last DurationWindow invocations
	firing bool
	calm   int // consecutive normal invocations while firing
}

func (d *durationDetector) observe(c *Config, now time.Time, requestID string, ms float64) *Anomaly {
	defer d.base.add(ms) // every duration joins the baseline: a lasting change becomes normal
	if d.base.n < c.Warmup {
		return nil
	}
	median, mad := d.base.medianMAD()
	threshold := max(median+c.DurationMADs*madScale*mad, c.DurationFactor*median, median+c.DurationFloorMs)
	isSlow := ms > threshold
	d.slow.add(isSlow, c.DurationWindow)
	if d.firing {
		if isSlow {
			d.calm = 0
		} else if d.calm++; d.calm >= c.DurationWindow {
			d.firing = false
		}
		return nil
	}
	n := d.slow.count()
	if n < c.DurationSlowOf {
		return nil
	}
	d.firing, d.calm = true, 0
	return &Anomaly{Type: Duration, Severity: Medium, At: now, RequestID: requestID,
		Values: map[string]float64{"duration_ms": ms, "baseline_ms": median, "threshold_ms": threshold,
			"slow": float64(n), "of_last": float64(c.DurationWindow)},
		Message: fmt.Sprintf("%d of the last %d invocations took longer than %.1f ms (baseline %.1f ms); the last %.1f ms",
			n, c.DurationWindow, threshold, median, ms)}
}

// errorDetector: the error rate in a window against its floor and its
// learned level.
type errorDetector struct {
	window   flags
	baseline float64 // EWMA of the error indicator, learned while not firing
	seen     int
	firing   bool
}

const errorAlpha = 0.01 // the baseline's memory: about 100 invocations

func (d *errorDetector) observe(c *Config, now time.Time, requestID string, failed bool) *Anomaly {
	d.window.add(failed, c.ErrorWindow)
	d.seen++
	n := d.window.count()
	rate := float64(n) / float64(c.ErrorWindow)
	if d.firing {
		if n <= c.ErrorFloor/2 {
			d.firing = false
		}
		return nil
	}
	x := 0.0
	if failed {
		x = 1
	}
	base := d.baseline
	d.baseline += errorAlpha * (x - d.baseline)
	if n < c.ErrorFloor || rate <= c.ErrorFactor*base {
		return nil
	}
	d.firing = true
	sev := Medium
	if rate >= 0.5 {
		sev = High
	}
	return &Anomaly{Type: ErrorRate, Severity: sev, At: now, RequestID: requestID,
		Values: map[string]float64{"errors": float64(n), "window": float64(c.ErrorWindow), "rate": rate, "baseline_rate": base},
		Message: fmt.Sprintf("%d errors in the last %d invocations (%.0f%%, baseline %.1f%%)",
			n, c.ErrorWindow, 100*rate, 100*base)}
}

// memoryDetector: peak memory creeping above what the first invocations
// used, or near the memory size.
type memoryDetector struct {
	seen      int
	baseline  int // the most used during warm-up, then the level that last fired
	nearLimit bool
}

func (d *memoryDetector) observe(c *Config, now time.Time, requestID string, usedMB, sizeMB int) *Anomaly {
	d.seen++
	if d.seen <= c.Warmup {
		d.baseline = max(d.baseline, usedMB)
		return nil
	}
	if sizeMB > 0 && float64(usedMB) >= c.MemoryLimitShare*float64(sizeMB) {
		if d.nearLimit {
			return nil
		}
		d.nearLimit = true
		d.baseline = max(d.baseline, usedMB)
		return &Anomaly{Type: Memory, Severity: High, At: now, RequestID: requestID,
			Values:  map[string]float64{"max_memory_used_mb": float64(usedMB), "memory_size_mb": float64(sizeMB)},
			Message: fmt.Sprintf("%d MB used of %d MB", usedMB, sizeMB)}
	}
	d.nearLimit = false
	limit := max(d.baseline+c.MemoryGrowthMB, int(c.MemoryGrowthFactor*float64(d.baseline)))
	if usedMB <= limit {
		return nil
	}
	base := d.baseline
	d.baseline = usedMB
	return &Anomaly{Type: Memory, Severity: Medium, At: now, RequestID: requestID,
		Values: map[string]float64{"max_memory_used_mb": float64(usedMB), "baseline_mb": float64(base),
			"threshold_mb": float64(limit), "memory_size_mb": float64(sizeMB)},
		Message: fmt.Sprintf("memory grew to %d MB from a baseline of %d MB", usedMB, base)}
}

// rateDetector: invocations arriving much faster than they used to.
type rateDetector struct {
	gaps    samples // seconds between invocations
	times   [maxRecent]time.Time
	n, next int
	firing  bool
}

const rateRecent = 10 // invocations in the recent mean

func (d *rateDetector) observe(c *Config, now time.Time, requestID string) *Anomaly {
	var last time.Time
	if d.n > 0 {
		last = d.times[(d.next+maxRecent-1)%maxRecent]
		d.gaps.add(max(now.Sub(last).Seconds(), 0))
	}
	d.times[d.next] = now
	d.next = (d.next + 1) % maxRecent
	d.n = min(d.n+1, maxRecent)
	if d.gaps.n < c.Warmup || d.n < rateRecent+1 {
		return nil
	}
	oldest := d.times[(d.next+maxRecent-rateRecent-1)%maxRecent]
	recent := now.Sub(oldest).Seconds() / rateRecent // mean gap of the last rateRecent
	baseline, _ := d.gaps.medianMAD()
	if d.firing {
		if recent >= baseline/(c.RateFactor/2) {
			d.firing = false
		}
		return nil
	}
	perSecond := 1 / max(recent, 1e-9)
	if recent > baseline/c.RateFactor || perSecond < c.RateFloor {
		return nil
	}
	d.firing = true
	return &Anomaly{Type: InvocationRate, Severity: Medium, At: now, RequestID: requestID,
		Values: map[string]float64{"per_second": perSecond, "baseline_per_second": 1 / max(baseline, 1e-9)},
		Message: fmt.Sprintf("%.1f invocations a second over the last %d, against %.2f usually",
			perSecond, rateRecent, 1/max(baseline, 1e-9))}
}

// waveDetector: many blocked events in a short time.
type waveDetector struct {
	times   [maxWave]time.Time
	n, next int
}

func (d *waveDetector) observe(c *Config, now time.Time, requestID string) *Anomaly {
	d.times[d.next] = now
	d.next = (d.next + 1) % c.WaveBlocked
	d.n = min(d.n+1, c.WaveBlocked)
	if d.n < c.WaveBlocked {
		return nil
	}
	oldest := d.times[d.next] // the ring is full: next is the oldest
	if now.Sub(oldest) > c.WaveWindow {
		return nil
	}
	d.n, d.next = 0, 0 // the next wave needs as many again
	return &Anomaly{Type: AttackWave, Severity: High, At: now, RequestID: requestID,
		Values: map[string]float64{"blocked": float64(c.WaveBlocked), "seconds": now.Sub(oldest).Seconds(),
			"window_seconds": c.WaveWindow.Seconds()},
		Message: fmt.Sprintf("%d blocked events in %.0f s", c.WaveBlocked, now.Sub(oldest).Seconds())}
}

// attackerDetector: one client IP blocked again and again.
type attackerDetector struct {
	ips map[string]*ipRecord
}

type ipRecord struct {
	first, last time.Time
	blocked     int
}

func (d *attackerDetector) observe(c *Config, now time.Time, requestID, ip string) *Anomaly {
	r := d.ips[ip]
	if r == nil {
		if len(d.ips) >= maxIPs {
			d.evict(c, now)
		}
		r = &ipRecord{first: now}
		d.ips[ip] = r
	}
	if now.Sub(r.first) > c.AttackerWindow {
		*r = ipRecord{first: now}
	}
	r.blocked++
	r.last = now
	if r.blocked < c.AttackerBlocked {
		return nil
	}
	n, since := r.blocked, now.Sub(r.first)
	delete(d.ips, ip)
	return &Anomaly{Type: Attacker, Severity: High, At: now, RequestID: requestID, Subject: ip,
		Values:  map[string]float64{"blocked": float64(n), "seconds": since.Seconds()},
		Message: fmt.Sprintf("client %s sent %d blocked requests in %.0f s", ip, n, since.Seconds())}
}

// evict makes room: addresses whose window has passed, or else the one
// seen longest ago.
func (d *attackerDetector) evict(c *Config, now time.Time) {
	var oldest string
	for ip, r := range d.ips {
		if now.Sub(r.first) > c.AttackerWindow {
			delete(d.ips, ip)
			continue
		}
		if oldest == "" || r.last.Before(d.ips[oldest].last) {
			oldest = ip
		}
	}
	if len(d.ips) >= maxIPs {
		delete(d.ips, oldest)
	}
}

// egressDetector: destinations not seen while learning, and invocations
// that call out far more than usual.
type egressDetector struct {
	reports int
	known   map[string]bool
	calls   samples
	firing  bool
	calm    int
}

func (d *egressDetector) observe(c *Config, now time.Time, r report.Report) []Anomaly {
	d.reports++
	learning := d.reports <= c.EgressLearning
	var out []Anomaly
	total := 0
	for _, o := range r.Outbound {
		total += o.Calls
		dest := fmt.Sprintf("%s:%d", o.Host, o.Port)
		if d.known[dest] {
			continue
		}
		if len(d.known) < maxDests {
			d.known[dest] = true
		}
		if !learning {
			msg := fmt.Sprintf("outbound call to %s, never seen while learning", dest)
			if o.Denied > 0 {
				msg += "; refused by the wrapper"
			}
			out = append(out, Anomaly{Type: NewDestination, Severity: High, At: now, RequestID: r.RequestID, Subject: dest,
				Values:  map[string]float64{"calls": float64(o.Calls), "errors": float64(o.Errors), "denied": float64(o.Denied)},
				Message: msg})
		}
	}
	defer d.calls.add(float64(total))
	if learning {
		return out
	}
	median, mad := d.calls.medianMAD()
	threshold := max(c.EgressCallFactor*median, median+6*madScale*mad, median+float64(c.EgressCallFloor))
	if float64(total) <= threshold {
		if d.firing {
			if d.calm++; d.calm >= 5 {
				d.firing = false
			}
		}
		return out
	}
	d.calm = 0
	if d.firing {
		return out
	}
	d.firing = true
	return append(out, Anomaly{Type: CallJump, Severity: Medium, At: now, RequestID: r.RequestID,
		Values:  map[string]float64{"calls": float64(total), "baseline_calls": median, "threshold_calls": threshold},
		Message: fmt.Sprintf("%d outbound calls in one invocation, against %.0f usually", total, median)})
}
