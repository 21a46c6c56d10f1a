package consumer

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// heapOf measures what decoding raw leaves on the heap, with raw itself.
func heapOf(t *testing.T, raw []byte) int64 {
	t.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	env, err := Decode(raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(env)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc) + int64(len(raw))
}

// TestFinding10BacklogChargeMatchesHeap: what the backlog charges for a
// message is within a factor of two of what it really holds once decoded,
// for real envelopes and for shapes built to be costly. Before, the charge
// was three times the raw size: a 4 MiB envelope of small objects held
// some 90 MiB against 12 MiB charged. Not parallel: it reads the heap.
func TestFinding10BacklogChargeMatchesHeap(t *testing.T) {
	rep := func(item string, n int) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	wrap := func(msg string) []byte { return []byte(`{"topic":"org.x","msg_id":"m","msg":` + msg + `}`) }
	keys := make([]string, 50000)
	for i := range keys {
		keys[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	shapes := map[string][]byte{
		"numbers":       wrap("[" + rep("0", 300000) + "]"),
		"empty objects": wrap("[" + rep("{}", 200000) + "]"),
		"empty arrays":  wrap("[" + rep("[]", 200000) + "]"),
		"one big map":   wrap("{" + strings.Join(keys, ",") + "}"),
		"long strings":  wrap("[" + rep(`"`+strings.Repeat("a", 1000)+`"`, 600) + "]"),
		"short strings": wrap("[" + rep(`"ab"`, 150000) + "]"),
		"nested":        wrap("[" + rep(`{"a":{"b":[1,"x",true,null]}}`, 20000) + "]"),
		"small objects": wrap("[" + rep(`{"a":1}`, 100000) + "]"),
	}
	// Real envelopes, of a few kilobytes each: the whole corpus at once.
	envs, err := ReadCorpus("../testdata/fedmsg-meta.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var corpus [][]byte
	for _, e := range envs {
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		corpus = append(corpus, raw)
	}
	for name, raw := range shapes {
		real := heapOf(t, raw)
		charged := cost(Received{Envelope: Envelope{Raw: raw}})
		ratio := float64(charged) / float64(real)
		t.Logf("%-13s raw %7d B, holds %9d B, charged %9d B (%.2f×)", name, len(raw), real, charged, ratio)
		if ratio < 0.5 || ratio > 2 {
			t.Errorf("%s: charged %d B for %d B held (%.2f×), want within 2×", name, charged, real, ratio)
		}
	}
	var real, charged int64
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var kept []Envelope
	for _, raw := range corpus {
		env, err := Decode(raw, 0)
		if err != nil {
			continue
		}
		kept = append(kept, env)
		charged += cost(Received{Envelope: env})
		real += int64(len(raw)) + receivedOverhead
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(kept)
	real += int64(after.HeapAlloc) - int64(before.HeapAlloc)
	ratio := float64(charged) / float64(real)
	t.Logf("corpus: %d envelopes hold %d B, charged %d B (%.2f×)", len(kept), real, charged, ratio)
	if len(kept) < 10 || ratio < 0.5 || ratio > 2 {
		t.Errorf("corpus: charged %d B for %d B held (%.2f×)", charged, real, ratio)
	}
}
