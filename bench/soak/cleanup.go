package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"

	"github.com/gomodule/redigo/redis"
)

func deleteKeys(pool *redis.Pool, prefix string) {
	conn := pool.Get()
	defer conn.Close()
	cursor := 0
	for {
		vals, err := redis.Values(conn.Do("SCAN", cursor, "MATCH", prefix+"*", "COUNT", 1000))
		if err != nil {
			return
		}
		cursor, _ = redis.Int(vals[0], nil)
		keys, _ := redis.Strings(vals[1], nil)
		for _, k := range keys {
			conn.Do("DEL", k)
		}
		if cursor == 0 {
			return
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("no randomness"))
	}
	return hex.EncodeToString(b)
}
