package strictjson

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// smallObject is how many keys an object may hold before the duplicate
// check moves from comparing each key with the earlier ones to a map.
const smallObject = 16

// quickCheck reports whether data passes Check without building the
// problem Check would return: one valid JSON value, no object with a key
// twice, nesting at most MaxDepth. It allocates nothing for the usual
// request body. false means "not sure", not "bad": it answers false for
// any object key with an escape or invalid UTF-8 (keys that may decode
// equal while their bytes differ), and Check then walks data token by
// token, which names the problem if there is one.
func quickCheck(data []byte) bool {
	if !json.Valid(data) {
		return false
	}
	type frame struct {
		object    bool
		expectKey bool
		first     int                 // this object's first key in keys
		seen      map[string]struct{} // set once the object outgrows smallObject
	}
	var stackBuf [8]frame
	var keysBuf [32][]byte
	stack, keys := stackBuf[:0], keysBuf[:0]
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '{', '[':
			if len(stack) >= MaxDepth {
				return false
			}
			stack = append(stack, frame{object: c == '{', expectKey: c == '{', first: len(keys)})
		case '}', ']':
			keys = keys[:stack[len(stack)-1].first]
			stack = stack[:len(stack)-1]
		case ',':
			if top := len(stack) - 1; stack[top].object {
				stack[top].expectKey = true
			}
		case '"':
			start, end := i+1, stringEnd(data, i)
			i = end
			top := len(stack) - 1
			if top >= 0 && stack[top].object && stack[top].expectKey {
				key := data[start:end]
				if bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key) {
					return false
				}
				f := &stack[top]
				f.expectKey = false
				if f.seen != nil {
					if _, dup := f.seen[string(key)]; dup {
						return false
					}
					f.seen[string(key)] = struct{}{}
					continue
				}
				for _, k := range keys[f.first:] {
					if bytes.Equal(k, key) {
						return false
					}
				}
				keys = append(keys, key)
				if len(keys)-f.first > smallObject {
					f.seen = make(map[string]struct{}, 2*smallObject)
					for _, k := range keys[f.first:] {
						f.seen[string(k)] = struct{}{}
					}
					keys = keys[:f.first]
				}
			}
		}
	}
	return true
}

// stringEnd returns the index of the quote that closes the string whose
// opening quote is at data[start]; data is valid JSON.
func stringEnd(data []byte, start int) int {
	for i := start + 1; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return len(data)
}
