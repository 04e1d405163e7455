package static

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
)

// hashLength is how many hex digits of a file's SHA-256 its URL carries.
const hashLength = 8

// File is one static file as it is served: its bytes, and compressed
// copies made the first time a client asks for them.
type File struct {
	Name        string // the name in FS, e.g. app.css
	HashedName  string // the name in URLs, e.g. app.1f2e3d4c.css
	Hash        string // hex digits of the content's SHA-256, hashLength long
	ContentType string
	Body        []byte
	url         string // "/static/" + HashedName, made once: pages ask for it on every render

	once   sync.Once
	gzip   []byte // nil when compressing does not pay
	brotli []byte
}

// Encoded returns the body in encoding ("br", "gzip" or "" for none), and
// whether that encoding is available: compressed copies are made once, on
// first use, and kept only when smaller than the original.
func (f *File) Encoded(encoding string) ([]byte, bool) {
	switch encoding {
	case "":
		return f.Body, true
	case "br", "gzip":
	default:
		return nil, false
	}
	if !f.compressible() {
		return nil, false
	}
	f.once.Do(f.compress)
	b := f.gzip
	if encoding == "br" {
		b = f.brotli
	}
	return b, b != nil
}

func (f *File) compressible() bool {
	return strings.HasPrefix(f.ContentType, "text/") || strings.HasPrefix(f.ContentType, "image/svg+xml")
}

func (f *File) compress() {
	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // the level is valid
	if _, err := w.Write(f.Body); err == nil && w.Close() == nil && gz.Len() < len(f.Body) {
		f.gzip = gz.Bytes()
	}
	var br bytes.Buffer
	bw := brotli.NewWriterLevel(&br, brotli.BestCompression)
	if _, err := bw.Write(f.Body); err == nil && bw.Close() == nil && br.Len() < len(f.Body) {
		f.brotli = br.Bytes()
	}
}

// contentTypes are the types of the files we ship; a file of any other kind
// in FS stops the program at start, so nothing is served with a guessed type.
var contentTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

// files maps a name in FS, and byHash a hashed name, to its file. Both are
// computed once, at start, and never change.
var files, byHash = load(FS)

func load(fsys fs.FS) (map[string]*File, map[string]*File) {
	plain, hashed := map[string]*File{}, map[string]*File{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ext := path.Ext(name)
		ct, ok := contentTypes[ext]
		if !ok {
			return fmt.Errorf("no content type for %s", name)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		h := hex.EncodeToString(sum[:])[:hashLength]
		f := &File{
			Name: name, Hash: h, ContentType: ct, Body: body,
			HashedName: strings.TrimSuffix(name, ext) + "." + h + ext,
		}
		f.url = "/static/" + f.HashedName
		plain[name], hashed[f.HashedName] = f, f
		return nil
	})
	if err != nil {
		panic("static: " + err.Error())
	}
	return plain, hashed
}

// Asset returns the URL path of the named static file, with its content
// hash in the name: "app.css" becomes "/static/app.1f2e3d4c.css". Naming a
// file that does not exist is a programming error, and panics.
func Asset(name string) string {
	f, ok := files[name]
	if !ok {
		panic("static: no file " + name)
	}
	return f.url
}

// Lookup finds a file by the hashed name in its URL. A name with a stale or
// unknown hash, or without one, finds nothing.
func Lookup(hashedName string) (*File, bool) {
	f, ok := byHash[hashedName]
	return f, ok
}
