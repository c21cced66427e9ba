// A Go gRPC client that dials berth's CRI socket the way crictl 1.26-1.29 did: the socket path
// as the dial target with a unix context dialer, so grpc-go sends the path as :authority.
// It calls RuntimeService/Version with a raw codec (no generated CRI types needed) and prints
// the response's runtime_name. Built by tests/cri/authority.rs from Debian's golang packages.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
)

type raw struct{}

func (raw) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (raw) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (raw) Name() string { return "proto" }

// field returns the bytes of length-delimited protobuf field n.
func field(msg []byte, n int) string {
	for i := 0; i < len(msg); {
		key := int(msg[i])
		i++
		l := int(msg[i])
		i++
		if key>>3 == n && key&7 == 2 {
			return string(msg[i : i+l])
		}
		i += l
	}
	return ""
}

func main() {
	sock := os.Args[1]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, sock, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	defer conn.Close()
	for i := 0; i < 3; i++ { // several calls: HPACK's dynamic table is reused between them
		in, out := []byte{}, []byte{}
		if err := conn.Invoke(ctx, "/runtime.v1.RuntimeService/Version", &in, &out, grpc.ForceCodec(raw{})); err != nil {
			fmt.Fprintln(os.Stderr, "Version:", err)
			os.Exit(1)
		}
		fmt.Println(field(out, 2))
	}
}
