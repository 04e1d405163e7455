package factor

import (
	"fmt"
	"strings"

	qrcode "github.com/yeqown/go-qrcode/v2"
)

// QRSVG renders text as a QR code in SVG, on the server: the secret never
// leaves for another service. Each module is one unit of the viewBox, with
// the four-module quiet zone the standard asks for.
func QRSVG(text string) (string, error) {
	qr, err := qrcode.NewWith(text, qrcode.WithErrorCorrectionLevel(qrcode.ErrorCorrectionMedium))
	if err != nil {
		return "", fmt.Errorf("qr code: %w", err)
	}
	w := &svgWriter{}
	if err := qr.Save(w); err != nil {
		return "", fmt.Errorf("qr code: %w", err)
	}
	return w.svg, nil
}

// svgWriter is a qrcode.Writer that draws the matrix as one SVG path.
type svgWriter struct{ svg string }

const quiet = 4

func (w *svgWriter) Write(mat qrcode.Matrix) error {
	bits := mat.Bitmap() // [y][x]
	size := len(bits) + 2*quiet
	var path strings.Builder
	for y, row := range bits {
		for x, dark := range row {
			if dark {
				fmt.Fprintf(&path, "M%d %dh1v1h-1z", x+quiet, y+quiet)
			}
		}
	}
	w.svg = fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="240" height="240" shape-rendering="crispEdges" role="img" aria-label="QR code for your authenticator app">`+
		`<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="%s"/></svg>`, size, size, size, size, path.String())
	return nil
}

func (w *svgWriter) Close() error { return nil }
