package sdk

import (
	"strconv"
	"unsafe"
)

// Editor rewrites the top-level members of a JSON object: it sets, replaces
// and deletes members and copies the others as they are, without decoding
// the document. It reuses its buffers, so a map step that keeps one Editor
// allocates nothing per event once they have grown.
//
//	var ed sdk.Editor
//	doc, ok := ed.Reset().SetString("region", r).SetInt("amount_cents", c).Apply(e.Data())
type Editor struct {
	edits []edit
	vals  []byte // encoded values of the edits
	out   []byte
	in    []byte // a copy of a document that was our own output
}

type edit struct {
	key        string
	start, end int // value in vals
	del        bool
	// A key may be edited more than once: its first edit stands for all,
	// and last is the index of the one that wins. later marks the others.
	last  int
	later bool
	used  bool
}

// Reset forgets the edits, keeping the buffers.
func (ed *Editor) Reset() *Editor {
	clear(ed.edits)
	ed.edits = ed.edits[:0]
	ed.vals = ed.vals[:0]
	return ed
}

func (ed *Editor) add(key string, start int, del bool) *Editor {
	n := len(ed.edits)
	later := false
	for i := range ed.edits {
		if e := &ed.edits[i]; !e.later && e.key == key {
			e.last, later = n, true
			break
		}
	}
	ed.edits = append(ed.edits, edit{key: key, start: start, end: len(ed.vals), del: del, last: n, later: later})
	return ed
}

// SetRaw sets key to a value given as JSON (which must be valid JSON).
func (ed *Editor) SetRaw(key string, raw []byte) *Editor {
	s := len(ed.vals)
	ed.vals = append(ed.vals, raw...)
	return ed.add(key, s, false)
}

// SetString sets key to a string.
func (ed *Editor) SetString(key, v string) *Editor {
	s := len(ed.vals)
	ed.vals = AppendString(ed.vals, v)
	return ed.add(key, s, false)
}

// SetInt sets key to an integer.
func (ed *Editor) SetInt(key string, v int64) *Editor {
	s := len(ed.vals)
	ed.vals = strconv.AppendInt(ed.vals, v, 10)
	return ed.add(key, s, false)
}

// SetFloat sets key to a number, in the shortest form that reads back the
// same. NaN and infinities, which JSON cannot spell, become null.
func (ed *Editor) SetFloat(key string, v float64) *Editor {
	s := len(ed.vals)
	if v != v || v > 1.7976931348623157e308 || v < -1.7976931348623157e308 {
		ed.vals = append(ed.vals, "null"...)
	} else {
		ed.vals = strconv.AppendFloat(ed.vals, v, 'g', -1, 64)
	}
	return ed.add(key, s, false)
}

// SetBool sets key to true or false.
func (ed *Editor) SetBool(key string, v bool) *Editor {
	s := len(ed.vals)
	ed.vals = strconv.AppendBool(ed.vals, v)
	return ed.add(key, s, false)
}

// Delete removes key.
func (ed *Editor) Delete(key string) *Editor { return ed.add(key, len(ed.vals), true) }

// Apply returns doc, a JSON object, with the edits applied: members that
// are set keep their place, new ones come last, in the order they were set.
// When a key is edited more than once, its last edit wins, and a new key
// takes the place of its first. The result is valid until the next Apply;
// ok is false when doc is not an object.
func (ed *Editor) Apply(doc []byte) (out []byte, ok bool) {
	for i := range ed.edits {
		ed.edits[i].used = false
	}
	if overlaps(doc, ed.out) {
		// Editing the last result again: read it from a copy, since the
		// new result is written where it is.
		ed.in = append(ed.in[:0], doc...)
		doc = ed.in
	}
	out = append(ed.out[:0], '{')
	first := true
	ok = Members(doc, func(k, v []byte) bool {
		for i := range ed.edits {
			e := &ed.edits[i]
			if !e.later && !e.used && keyEquals(k, e.key) {
				e.used = true
				w := &ed.edits[e.last]
				if w.del {
					return true
				}
				v = ed.vals[w.start:w.end]
				break
			}
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, k...)
		out = append(out, ':')
		out = append(out, v...)
		return true
	})
	if !ok {
		ed.out = out
		return nil, false
	}
	for i := range ed.edits {
		e := &ed.edits[i]
		if e.later || e.used {
			continue
		}
		w := &ed.edits[e.last]
		if w.del {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = AppendString(out, e.key)
		out = append(out, ':')
		out = append(out, ed.vals[w.start:w.end]...)
	}
	out = append(out, '}')
	ed.out = out
	return out, true
}

// overlaps reports whether a and b share any of their backing arrays'
// bytes (up to b's capacity).
func overlaps(a, b []byte) bool {
	if len(a) == 0 || cap(b) == 0 {
		return false
	}
	a0 := uintptr(unsafe.Pointer(unsafe.SliceData(a)))
	b0 := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return a0 < b0+uintptr(cap(b)) && b0 < a0+uintptr(len(a))
}
