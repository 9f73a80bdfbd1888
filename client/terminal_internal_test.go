package client

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

type discardCloser struct{ io.Reader }

func (discardCloser) Write(p []byte) (int, error) { return len(p), nil }
func (discardCloser) Close() error                { return nil }

// FuzzTerminalReadMessage: no byte stream from a server crashes the
// client's WebSocket reader or makes it return more than its cap.
func FuzzTerminalReadMessage(f *testing.F) {
	for _, s := range [][]byte{
		{0x82, 0x02, 'h', 'i'},                           // binary "hi"
		{0x81, 0x02, '{', '}'},                           // text
		{0x02, 0x01, 'a', 0x80, 0x01, 'b'},               // fragmented
		{0x89, 0x00, 0x82, 0x01, 'x'},                    // ping, then data
		{0x88, 0x02, 0x03, 0xE8},                         // close
		{0x82, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0}, // a huge length
		{0x82, 0x85, 1, 2, 3, 4, 'x'},                    // masked from the server
		{0x82},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		body := discardCloser{bytes.NewReader(data)}
		term := &Terminal{body: body, br: bufio.NewReader(body)}
		for range 64 {
			_, msg, err := term.ReadMessage()
			if err != nil {
				return
			}
			if len(msg) > maxTerminalFrame {
				t.Fatalf("message of %d bytes", len(msg))
			}
		}
	})
}
