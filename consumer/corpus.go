package consumer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ReadEnvelopes reads envelopes from r: either one JSON object a line, or a
// JSON array of objects. A line of the shared test corpus ({"case", "msg",
// "expected"}) yields its "msg". Numbers are kept as json.Number.
func ReadEnvelopes(r io.Reader) ([]map[string]any, error) {
	br := bufio.NewReader(r)
	first, err := peekNonSpace(br)
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read envelopes: %w", err)
	}
	var out []map[string]any
	if first == '[' {
		dec := json.NewDecoder(br)
		dec.UseNumber()
		var arr []map[string]any
		if err := dec.Decode(&arr); err != nil {
			return nil, fmt.Errorf("read envelope array: %w", err)
		}
		for i, m := range arr {
			env, err := unwrapCorpus(m)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			out = append(out, env)
		}
		return out, nil
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		env, err := unwrapCorpus(m)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, env)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read envelopes: %w", err)
	}
	return out, nil
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return 0, err
		}
		if b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t' {
			br.ReadByte()
			continue
		}
		return b[0], nil
	}
}

func unwrapCorpus(m map[string]any) (map[string]any, error) {
	if inner, ok := m["msg"].(map[string]any); ok {
		if _, isCase := m["case"]; isCase {
			m = inner
		}
	}
	if _, ok := m["topic"].(string); !ok {
		return nil, ErrNotEnvelope
	}
	return m, nil
}

// ReadCorpus reads every *.json and *.jsonl file of a folder (or one file),
// in name order.
func ReadCorpus(path string) ([]map[string]any, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open corpus: %w", err)
	}
	files := []string{path}
	if st.IsDir() {
		files = nil
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("list corpus: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() && (strings.HasSuffix(e.Name(), ".jsonl") || strings.HasSuffix(e.Name(), ".json")) {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		sort.Strings(files)
	}
	var out []map[string]any
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("open corpus file: %w", err)
		}
		envs, err := ReadEnvelopes(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, envs...)
	}
	return out, nil
}
