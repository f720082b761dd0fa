// go-bench: client-side CPU cost of etcd's official Go client (clientv3)
// for Put / Get with N requests in flight, for comparison with fastetcd.
//
// Build (GOPATH mode, Debian golang-etcd-server-dev 3.4.x sources): see build.sh.
//
// GOMAXPROCS is left at the Go default (= number of CPUs, i.e. both cores on
// the 2-core bench machine); it is printed in the JSON output.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/version"
)

const numKeys = 10000

func cpuTimes() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "etcd client endpoint host:port")
	op := flag.String("op", "put", "put|get")
	inflight := flag.Int("inflight", 64, "concurrent requests in flight (goroutines)")
	maxOps := flag.Int64("ops", 20000, "max ops in the measured phase")
	seconds := flag.Float64("seconds", 8, "max seconds of the measured phase")
	warmup := flag.Int("warmup", 500, "warm-up ops (not measured)")
	flag.Parse()

	if *op != "put" && *op != "get" {
		fmt.Fprintln(os.Stderr, "--op must be put or get")
		os.Exit(2)
	}

	// One client = one gRPC connection shared by all goroutines
	// (like etcd's own benchmark tool with --conns=1).
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{*endpoint},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	defer cli.Close()

	keys := make([]string, numKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("/bench/put/%06d", i) // the keys of transport_bench.py
	}
	value := strings.Repeat("v", 64) // 64-byte value
	ctx := context.Background()
	const getKey = "/bench/get"

	if *op == "get" {
		if _, err := cli.Put(ctx, getKey, value); err != nil {
			fmt.Fprintln(os.Stderr, "initial put:", err)
			os.Exit(1)
		}
	}

	doOp := func(i int64) error {
		if *op == "put" {
			_, err := cli.Put(ctx, keys[i%numKeys], value)
			return err
		}
		_, err := cli.Get(ctx, getKey)
		return err
	}

	// run executes up to n ops (stopping at deadline if non-zero) with
	// `inflight` goroutines; returns ops completed.
	run := func(n int64, deadline time.Time) int64 {
		var next, done int64
		var wg sync.WaitGroup
		var firstErr atomic.Value
		for g := 0; g < *inflight; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := atomic.AddInt64(&next, 1) - 1
					if i >= n {
						return
					}
					if !deadline.IsZero() && time.Now().After(deadline) {
						return
					}
					if err := doOp(i); err != nil {
						firstErr.Store(err)
						return
					}
					atomic.AddInt64(&done, 1)
				}
			}()
		}
		wg.Wait()
		if e := firstErr.Load(); e != nil {
			fmt.Fprintln(os.Stderr, "op error:", e)
			os.Exit(1)
		}
		return done
	}

	run(int64(*warmup), time.Time{})
	runtime.GC()

	u0, s0 := cpuTimes()
	t0 := time.Now()
	ops := run(*maxOps, t0.Add(time.Duration(*seconds*float64(time.Second))))
	wall := time.Since(t0)
	u1, s1 := cpuTimes()

	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(ops) }
	user, sys := u1-u0, s1-s0
	out := map[string]interface{}{
		"client":         "go-clientv3",
		"client_version": version.Version,
		"go_version":     runtime.Version(),
		"gomaxprocs":     runtime.GOMAXPROCS(0),
		"op":             *op,
		"inflight":       *inflight,
		"ops":            ops,
		"wall_s":         wall.Seconds(),
		"cpu_us_per_op":  us(user + sys),
		"ops_per_s":      float64(ops) / wall.Seconds(),
		"user_us_per_op": us(user),
		"sys_us_per_op":  us(sys),
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}
