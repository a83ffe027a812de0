package decision

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)

func sample() Decisions {
	return Decisions{
		Written:    t0,
		Quarantine: &Quarantine{Until: t0.Add(5 * time.Minute), Reason: "attack_wave"},
		BlockedIPs: []BlockedIP{{IP: "203.0.113.9", Until: t0.Add(time.Minute)}, {IP: "2001:db8::1", Until: t0.Add(time.Hour)}},
		DeniedDestinations: []Destination{
			{Host: "Evil.example", Port: 443, Until: t0.Add(time.Hour)},
			{Host: "exfil.example", Until: t0.Add(time.Hour)},
		},
	}
}

func TestWriteReadActive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "decisions.json")
	if err := Write(path, sample()); err != nil {
		t.Fatal(err)
	}
	d, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != Version || d.Quarantine == nil || len(d.BlockedIPs) != 2 || len(d.DeniedDestinations) != 2 {
		t.Fatalf("read back %+v", d)
	}
	a := newActive(d)
	for _, c := range []struct {
		name string
		got  bool
		want bool
	}{
		{"quarantined before until", quarantined(a, t0.Add(4*time.Minute)), true},
		{"quarantined at until", quarantined(a, t0.Add(5*time.Minute)), false},
		{"ip blocked", blocked(a, "203.0.113.9", t0), true},
		{"ip blocked, v4-mapped", blocked(a, "::ffff:203.0.113.9", t0), true},
		{"ip blocked after until", blocked(a, "203.0.113.9", t0.Add(2*time.Minute)), false},
		{"other ip", blocked(a, "203.0.113.10", t0), false},
		{"ipv6", blocked(a, "2001:db8::1", t0.Add(30*time.Minute)), true},
		{"not an ip", blocked(a, "x", t0), false},
		{"denied host:port, any case", a.Denied("evil.EXAMPLE", 443, t0), true},
		{"other port", a.Denied("evil.example", 80, t0), false},
		{"every port", a.Denied("exfil.example", 8443, t0), true},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	// The decision itself comes back, the one that lasts longest.
	d.DeniedDestinations = append(d.DeniedDestinations, Destination{Host: "evil.example", Port: 443, Until: t0.Add(2 * time.Hour), Reason: "egress_new_destination"})
	if x, ok := newActive(d).DeniedDestination("evil.example", 443, t0); !ok || x.Reason != "egress_new_destination" || !x.Until.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("DeniedDestination = %+v, %v; want the later decision with its reason", x, ok)
	}
	var none *Active
	if quarantined(none, t0) || blocked(none, "203.0.113.9", t0) || none.Denied("evil.example", 443, t0) {
		t.Error("a nil *Active enforces something")
	}
}

func quarantined(a *Active, now time.Time) bool { _, ok := a.Quarantined(now); return ok }

func blocked(a *Active, ip string, now time.Time) bool { _, ok := a.IPBlocked(ip, now); return ok }

func TestExpire(t *testing.T) {
	d := sample()
	if d.Expire(t0) {
		t.Error("Expire dropped something at t0")
	}
	if !d.Expire(t0.Add(2*time.Minute)) || len(d.BlockedIPs) != 1 || d.Quarantine == nil {
		t.Errorf("after 2 minutes: %+v; want one blocked IP dropped", d)
	}
	if !d.Expire(t0.Add(10*time.Minute)) || d.Quarantine != nil || len(d.BlockedIPs) != 1 {
		t.Errorf("after 10 minutes: %+v; want the quarantine dropped", d)
	}
	if !d.Expire(t0.Add(2*time.Hour)) || d.BlockedIPs != nil || d.DeniedDestinations != nil {
		t.Errorf("after 2 hours: %+v; want all dropped", d)
	}
	if d.Expire(t0.Add(3 * time.Hour)) {
		t.Error("Expire dropped something from nothing")
	}
}

func TestParseRefuses(t *testing.T) {
	for _, c := range []string{
		`not json`,
		`{"version":2}`,
		`{"version":1,"blocked_ips":[{"ip":"999.1.1.1","until":"2026-01-01T00:00:00Z"}]}`,
		`{"version":1,"denied_destinations":[{"host":"","until":"2026-01-01T00:00:00Z"}]}`,
		`{"version":1,"denied_destinations":[{"host":"a","port":70000,"until":"2026-01-01T00:00:00Z"}]}`,
	} {
		if _, err := Parse([]byte(c)); err == nil {
			t.Errorf("Parse(%s) accepted it", c)
		}
	}
}

func TestWatcher(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.json")
	w := NewWatcher(path)
	if a, err := w.Load(); a != nil || err != nil {
		t.Fatalf("no file: %v, %v; want nothing", a, err)
	}
	if err := Write(path, sample()); err != nil {
		t.Fatal(err)
	}
	a1, err := w.Load()
	if err != nil || !quarantined(a1, t0) {
		t.Fatalf("after Write: %v, %v", a1, err)
	}
	if a2, _ := w.Load(); a2 != a1 {
		t.Error("unchanged file parsed again")
	}

	// A broken file keeps the last good decisions, and says so for as
	// long as it stays broken, whatever breaks it next.
	huge := `{"version":1,"blocked_ips":[` + strings.Repeat(`{"ip":"203.0.113.9","until":"2026-01-02T15:01:00Z"},`, MaxFileBytes/50) + `{"ip":"203.0.113.9","until":"2026-01-02T15:01:00Z"}]}`
	for _, broken := range []string{`{"version":1,`, `{"version":1,"quarantine":{"until":"2026-01-02T15:05:00Z"`, "\x00\xff garbage", "", `{"version":2}`, `[]`, huge} {
		if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if a, err := w.Load(); err == nil || a != a1 {
				t.Errorf("broken file %.40q: %v, %v; want the last good decisions and an error", broken, a, err)
			}
		}
	}

	// New decisions replace them; a removed file means none.
	d := sample()
	d.Quarantine = nil
	if err := Write(path, d); err != nil {
		t.Fatal(err)
	}
	if a5, err := w.Load(); err != nil || quarantined(a5, t0) || !blocked(a5, "203.0.113.9", t0) {
		t.Errorf("rewritten without quarantine: %v, %v", a5, err)
	}

	// A rewrite in place of the same size is seen: the modification time.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), "203.0.113.9", "203.0.113.8", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if a, err := w.Load(); err != nil || blocked(a, "203.0.113.9", t0) || !blocked(a, "203.0.113.8", t0) {
		t.Errorf("rewritten in place, same size: %v, %v; want it parsed again", a, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if a6, err := w.Load(); a6 != nil || err != nil {
		t.Errorf("removed: %v, %v; want nothing", a6, err)
	}
}

// Readers racing a writer see whole files only.
func TestWriteIsAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.json")
	if err := Write(path, sample()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := Read(path); err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
		}
	}()
	d := sample()
	for i := range 300 {
		d.BlockedIPs = append(d.BlockedIPs, BlockedIP{IP: "198.51.100." + string(rune('0'+i%10)), Until: t0})
		if err := Write(path, d); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("a reader saw a partial file: %v", err)
	default:
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*"))
	if len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}
