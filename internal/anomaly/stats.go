package anomaly

import "slices"

// Ring sizes: every detector's memory is fixed by them.
const (
	maxSamples     = 64  // baseline samples (durations, gaps, outbound calls)
	maxRecent      = 16  // recent verdicts and invocation times
	maxErrorWindow = 128 // outcomes in the error-rate window
	maxWave        = 64  // blocked-event times in the wave window
	maxIPs         = 256 // client IPs tracked for attackers
	maxDests       = 512 // destinations learned
)

// samples keeps the last maxSamples values and their robust statistics.
type samples struct {
	v       [maxSamples]float64
	n, next int
	scratch [maxSamples]float64
}

func (s *samples) add(x float64) {
	s.v[s.next] = x
	s.next = (s.next + 1) % maxSamples
	s.n = min(s.n+1, maxSamples)
}

// medianMAD returns the median of the samples and their median absolute
// deviation from it.
func (s *samples) medianMAD() (median, mad float64) {
	if s.n == 0 {
		return 0, 0
	}
	x := s.scratch[:s.n]
	copy(x, s.v[:s.n])
	slices.Sort(x)
	median = mid(x)
	for i, v := range x {
		if v < median {
			x[i] = median - v
		} else {
			x[i] = v - median
		}
	}
	slices.Sort(x)
	return median, mid(x)
}

func mid(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// madScale turns a MAD into a standard deviation for normal data.
const madScale = 1.4826

// flags keeps the last yes/no verdicts, as many as the window add is
// given (at most maxErrorWindow).
type flags struct {
	v       [maxErrorWindow]bool
	n, next int
}

func (f *flags) add(b bool, window int) {
	f.v[f.next] = b
	f.next = (f.next + 1) % window
	f.n = min(f.n+1, window)
}

func (f *flags) count() int {
	c := 0
	for _, b := range f.v[:f.n] {
		if b {
			c++
		}
	}
	return c
}
