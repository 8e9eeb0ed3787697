package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Linux reports process CPU time in clock ticks of 1/100 s on every
// platform Go runs this benchmark on (USER_HZ).
const ticksPerSecond = 100

// cpuMeter reads the CPU time of the servers under test (--server-pids),
// so that each window can say how busy they were: near one core per pinned
// CPU means the server, not this program, set the limit.
type cpuMeter struct {
	pids  []int
	ticks int64
	at    time.Time
}

func newCPUMeter(list string) (*cpuMeter, error) {
	m := &cpuMeter{}
	for _, field := range strings.Split(list, ",") {
		if field = strings.TrimSpace(field); field == "" {
			continue
		}
		pid, err := strconv.Atoi(field)
		if err != nil {
			return nil, fmt.Errorf("bad pid %q", field)
		}
		m.pids = append(m.pids, pid)
	}
	m.ticks, m.at = m.read(), time.Now()
	return m, nil
}

func (m *cpuMeter) read() int64 {
	var sum int64
	for _, pid := range m.pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name: utime is the 14th
		// field of the line, stime the 15th.
		text := string(data)
		fields := strings.Fields(text[strings.LastIndexByte(text, ')')+1:])
		if len(fields) > 12 {
			user, _ := strconv.ParseInt(fields[11], 10, 64)
			system, _ := strconv.ParseInt(fields[12], 10, 64)
			sum += user + system
		}
	}
	return sum
}

// lap returns the cores the servers used since the last lap (or since
// creation), or -1 without pids.
func (m *cpuMeter) lap() float64 {
	if len(m.pids) == 0 {
		return -1
	}
	ticks, at := m.read(), time.Now()
	cores := float64(ticks-m.ticks) / ticksPerSecond / at.Sub(m.at).Seconds()
	m.ticks, m.at = ticks, at
	return cores
}
