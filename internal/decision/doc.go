// Package decision is how the lambdarasp extension tells protect.Handler
// what to enforce: a quarantine of the whole function, blocked client IPs,
// denied outbound destinations, each until a time. The extension writes
// them to one JSON file (Write replaces it atomically, by rename); the
// wrapper reads it through a Watcher, which looks at the file's stamp
// (device, inode, size, modification time) on each call and parses the
// file again only when the stamp changed: about 1.5 µs per invocation when
// nothing changed, one stat(2) (bench/report_test.go).
//
// The file, with every field optional:
//
//	{
//	  "version": 1,
//	  "written": "2026-01-02T15:04:05Z",
//	  "quarantine": {"until": "2026-01-02T15:09:05Z", "reason": "attack_wave"},
//	  "blocked_ips": [{"ip": "203.0.113.9", "until": "…", "reason": "attacker"}],
//	  "denied_destinations": [{"host": "evil.example", "port": 443, "until": "…", "reason": "egress_new_destination"}]
//	}
//
// A decision whose until has passed is ignored. A port of 0 denies every
// port of the host. A file that cannot be used — truncated, garbage,
// empty, larger than MaxFileBytes, of another version — never lifts a
// decision: the Watcher keeps the last good ones.
package decision
