// tlogcheck checks caltrail's checkpoints and proofs with Go's golang.org/x/mod/sumdb/note and
// sumdb/tlog, code caltrail shares nothing with. Run by tests/it/trust.rs:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run tlogcheck.go checkpoint VKEYFILE CHECKPOINT
//	... inclusion VKEYFILE PROOF
//	... consistency VKEYFILE OLDCHECKPOINT PROOF
//
// It prints one line starting with "ok" and exits 0, or says why and exits 1.
package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func read(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return data
}

func hash(text string) tlog.Hash {
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(b) != 32 {
		fail("not a hash: %q", text)
	}
	var h tlog.Hash
	copy(h[:], b)
	return h
}

// open verifies the checkpoint's signature with note.Open, then reads its three lines.
func open(vkey string, msg []byte) (string, int64, tlog.Hash) {
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail("vkey: %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("note.Open: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) != 3 {
		fail("a checkpoint of %d lines", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("size: %v", err)
	}
	return lines[0], size, hash(lines[2])
}

// split cuts a bundle at its first blank line: the proof lines, and the checkpoint.
func split(data []byte) ([]string, []byte) {
	text := string(data)
	i := strings.Index(text, "\n\n")
	if i < 0 {
		fail("no blank line")
	}
	return strings.Split(text[:i], "\n"), []byte(text[i+2:])
}

func main() {
	if len(os.Args) < 4 {
		fail("usage: tlogcheck checkpoint|inclusion|consistency VKEYFILE FILE [FILE]")
	}
	vkey := strings.TrimSpace(string(read(os.Args[2])))
	switch os.Args[1] {
	case "checkpoint":
		origin, size, root := open(vkey, read(os.Args[3]))
		fmt.Printf("ok %s %d %s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]))
	case "inclusion":
		lines, checkpoint := split(read(os.Args[3]))
		if lines[0] != "c2sp.org/tlog-proof@v1" {
			fail("header %q", lines[0])
		}
		extra, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[1], "extra "))
		if err != nil {
			fail("extra: %v", err)
		}
		index, err := strconv.ParseInt(strings.TrimPrefix(lines[2], "index "), 10, 64)
		if err != nil {
			fail("index: %v", err)
		}
		var proof tlog.RecordProof
		for _, line := range lines[3:] {
			proof = append(proof, hash(line))
		}
		_, size, root := open(vkey, checkpoint)
		if err := tlog.CheckRecord(proof, size, root, index, tlog.RecordHash(extra)); err != nil {
			fail("CheckRecord: %v", err)
		}
		fmt.Printf("ok %d %d\n", index, size)
	case "consistency":
		_, oldSize, oldRoot := open(vkey, read(os.Args[3]))
		lines, checkpoint := split(read(os.Args[4]))
		old, err := strconv.ParseInt(strings.TrimPrefix(lines[0], "old "), 10, 64)
		if err != nil || old != oldSize {
			fail("old line %q against the old checkpoint's %d", lines[0], oldSize)
		}
		var proof tlog.TreeProof
		for _, line := range lines[1:] {
			proof = append(proof, hash(line))
		}
		_, size, root := open(vkey, checkpoint)
		if err := tlog.CheckTree(proof, size, root, oldSize, oldRoot); err != nil {
			fail("CheckTree: %v", err)
		}
		fmt.Printf("ok %d %d\n", oldSize, size)
	default:
		fail("unknown mode %q", os.Args[1])
	}
}
