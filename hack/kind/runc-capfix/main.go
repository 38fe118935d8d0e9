// runc-capfix is Stepline's wrapper around runc for hosts whose capability bounding set lacks
// some capabilities (here CAP_SYS_RESOURCE) and whose hard rlimits are low (nofile 20000).
// There runc fails to start privileged containers ("unable to apply caps: operation not
// permitted", or setrlimit EPERM): it asks for a capability or a limit its caller cannot have.
//
// On `create` and `run` it edits the bundle's config.json, on `exec` the --process file:
//   - capabilities outside this process' bounding set are dropped from every capability set;
//   - rlimits are clamped to this process' own hard limits;
//   - without CAP_SYS_RESOURCE, an oomScoreAdj below this process' own is raised to it (the
//     kernel refuses to lower oom_score_adj below the inherited minimum without that capability:
//     "nsexec: failed to update /proc/self/oom_score_adj: Permission denied").
//
// Then it execs the real runc: "<own path>.real" if that exists, else $STEPLINE_REAL_RUNC, else
// /usr/sbin/runc. Numbers and unknown fields of the spec are kept byte-exact (json.RawMessage).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

var capNames = []string{"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
	"SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
	"NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT",
	"SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
	"SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE",
	"MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
	"CHECKPOINT_RESTORE"}

var rlimitNumbers = map[string]int{"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2,
	"RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
	"RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11,
	"RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15}

// allowedCaps reads this process' bounding set from /proc/self/status.
func allowedCaps() (map[string]bool, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "CapBnd:") {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "CapBnd:")), 16, 64)
		if err != nil {
			return nil, err
		}
		allowed := map[string]bool{}
		for i, name := range capNames {
			if mask&(1<<uint(i)) != 0 {
				allowed["CAP_"+name] = true
			}
		}
		return allowed, nil
	}
	return nil, fmt.Errorf("no CapBnd line in /proc/self/status")
}

type rlimit struct {
	Type string `json:"type"`
	Hard uint64 `json:"hard"`
	Soft uint64 `json:"soft"`
}

// fixProcess edits a runtime-spec process object in place; reports whether it changed.
func fixProcess(proc map[string]json.RawMessage, allowed map[string]bool) (bool, error) {
	changed := false
	if raw, ok := proc["capabilities"]; ok && string(raw) != "null" {
		var caps map[string][]string
		if err := json.Unmarshal(raw, &caps); err != nil {
			return false, fmt.Errorf("capabilities: %w", err)
		}
		for set, list := range caps {
			kept := list[:0:0]
			for _, c := range list {
				if allowed[c] {
					kept = append(kept, c)
				} else {
					changed = true
				}
			}
			caps[set] = kept
		}
		if changed {
			out, _ := json.Marshal(caps)
			proc["capabilities"] = out
		}
	}
	if raw, ok := proc["rlimits"]; ok && string(raw) != "null" {
		var limits []rlimit
		if err := json.Unmarshal(raw, &limits); err != nil {
			return false, fmt.Errorf("rlimits: %w", err)
		}
		clamped := false
		for i, l := range limits {
			num, known := rlimitNumbers[l.Type]
			if !known {
				continue
			}
			var own syscall.Rlimit
			if err := syscall.Getrlimit(num, &own); err != nil {
				continue
			}
			if l.Hard > own.Max {
				limits[i].Hard = own.Max
				clamped = true
			}
			if limits[i].Soft > limits[i].Hard {
				limits[i].Soft = limits[i].Hard
				clamped = true
			}
		}
		if clamped {
			out, _ := json.Marshal(limits)
			proc["rlimits"] = out
			changed = true
		}
	}
	if raw, ok := proc["oomScoreAdj"]; ok && string(raw) != "null" && !hasEffectiveCap(24) {
		var want int
		if err := json.Unmarshal(raw, &want); err == nil {
			if own, err := ownOOMScoreAdj(); err == nil && want < own {
				proc["oomScoreAdj"], _ = json.Marshal(own)
				changed = true
			}
		}
	}
	return changed, nil
}

// hasEffectiveCap reports whether this process holds capability number n (24: CAP_SYS_RESOURCE).
func hasEffectiveCap(n uint) bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "CapEff:") {
			mask, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "CapEff:")), 16, 64)
			return err == nil && mask&(1<<n) != 0
		}
	}
	return false
}

func ownOOMScoreAdj() (int, error) {
	data, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// fixFile edits a config.json (isSpec) or an exec process file.
func fixFile(path string, isSpec bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	allowed, err := allowedCaps()
	if err != nil {
		return err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return err
	}
	var changed bool
	if isSpec {
		raw, ok := doc["process"]
		if !ok || string(raw) == "null" {
			return nil
		}
		var proc map[string]json.RawMessage
		if err := json.Unmarshal(raw, &proc); err != nil {
			return err
		}
		if changed, err = fixProcess(proc, allowed); err != nil || !changed {
			return err
		}
		doc["process"], _ = json.Marshal(proc)
	} else if changed, err = fixProcess(doc, allowed); err != nil || !changed {
		return err
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp := path + ".capfix"
	if err := os.WriteFile(tmp, out, info.Mode().Perm()); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func realRunc() string {
	if self, err := os.Executable(); err == nil {
		if _, err := os.Stat(self + ".real"); err == nil {
			return self + ".real"
		}
	}
	if p := os.Getenv("STEPLINE_REAL_RUNC"); p != "" {
		return p
	}
	return "/usr/sbin/runc"
}

func main() {
	args := os.Args[1:]
	// Global options that take a value; the subcommand is the first other non-option argument.
	valued := map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		if valued[args[i]] {
			i++
		}
		i++
	}
	if i < len(args) {
		rest := args[i+1:]
		value := func(names ...string) (string, bool) {
			for j, a := range rest {
				for _, n := range names {
					if a == n && j+1 < len(rest) {
						return rest[j+1], true
					}
					if strings.HasPrefix(a, n+"=") {
						return strings.TrimPrefix(a, n+"="), true
					}
				}
			}
			return "", false
		}
		var err error
		switch args[i] {
		case "create", "run":
			bundle, ok := value("--bundle", "-b")
			if !ok {
				bundle, _ = os.Getwd()
			}
			err = fixFile(filepath.Join(bundle, "config.json"), true)
		case "exec":
			if p, ok := value("--process", "-p"); ok {
				err = fixFile(p, false)
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "runc-capfix: %v (continuing with the unmodified spec)\n", err)
		}
	}
	real := realRunc()
	if err := syscall.Exec(real, append([]string{real}, args...), os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "runc-capfix: exec %s: %v\n", real, err)
		os.Exit(127)
	}
}
