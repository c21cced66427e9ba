// A SPDY/3.1 streaming client built on Debian's docker/spdystream (the library under
// Kubernetes' client-go remotecommand and portforward): it upgrades an HTTP/1.1 request as
// crictl and kubelet do and opens the streams in client-go's order.
//
//	gospdy exec URL   -> sends "hello\n" on stdin, prints "OUT:<stdout>|ERR:<stderr>|STATUS:<json>"
//	gospdy pf URL     -> sends an HTTP GET through a port-forward data stream, prints the answer
//	gospdy pfmulti URL P1,P2 N -> one session, N connections to each port, all open at once
//	                  (error then data stream, paired by requestid, as client-go makes them),
//	                  then an HTTP GET on each; prints "PORT:<last line of the answer>|<error>"
package main

import (
	"bufio"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/docker/spdystream"
)

func dial(raw, protocol string) *spdystream.Connection {
	u, err := neturl.Parse(raw)
	check(err)
	c, err := net.Dial("tcp", u.Host)
	check(err)
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"+
		"X-Stream-Protocol-Version: %s\r\nX-Stream-Protocol-Version: v2.channel.k8s.io\r\nContent-Length: 0\r\n\r\n",
		u.RequestURI(), u.Host, protocol)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	check(err)
	if resp.StatusCode != 101 || resp.Header.Get("X-Stream-Protocol-Version") != protocol {
		fmt.Fprintf(os.Stderr, "upgrade refused: %s %v\n", resp.Status, resp.Header)
		os.Exit(1)
	}
	sc, err := spdystream.NewConnection(c, false)
	check(err)
	go sc.Serve(spdystream.NoOpStreamHandler)
	return sc
}

func stream(sc *spdystream.Connection, h http.Header) *spdystream.Stream {
	s, err := sc.CreateStream(h, nil, false)
	check(err)
	check(s.Wait())
	return s
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func main() {
	switch os.Args[1] {
	case "exec":
		sc := dial(os.Args[2], "v4.channel.k8s.io")
		errS := stream(sc, http.Header{"Streamtype": {"error"}})
		stdin := stream(sc, http.Header{"Streamtype": {"stdin"}})
		stdout := stream(sc, http.Header{"Streamtype": {"stdout"}})
		stderr := stream(sc, http.Header{"Streamtype": {"stderr"}})
		_, err := stdin.Write([]byte("hello\n"))
		check(err)
		check(stdin.Close())
		outc, errc := make(chan []byte), make(chan []byte)
		go func() { b, _ := ioutil.ReadAll(stdout); outc <- b }()
		go func() { b, _ := ioutil.ReadAll(stderr); errc <- b }()
		status, _ := ioutil.ReadAll(errS)
		fmt.Printf("OUT:%s|ERR:%s|STATUS:%s", <-outc, <-errc, status)
	case "pf":
		sc := dial(os.Args[2], "portforward.k8s.io")
		h := http.Header{"Streamtype": {"error"}, "Port": {os.Args[3]}, "Requestid": {"0"}}
		errS := stream(sc, h)
		h = http.Header{"Streamtype": {"data"}, "Port": {os.Args[3]}, "Requestid": {"0"}}
		data := stream(sc, h)
		_, err := io.WriteString(data, "GET /index.html HTTP/1.0\r\n\r\n")
		check(err)
		b, _ := ioutil.ReadAll(data)
		e, _ := ioutil.ReadAll(errS)
		fmt.Printf("%s%s", b, e)
	case "pfmulti":
		sc := dial(os.Args[2], "portforward.k8s.io")
		ports := strings.Split(os.Args[3], ",")
		n, err := strconv.Atoi(os.Args[4])
		check(err)
		results := make([]string, len(ports)*n)
		var opened, done sync.WaitGroup
		opened.Add(len(results))
		done.Add(len(results))
		for i, p := range ports {
			for k := 0; k < n; k++ {
				idx := i*n + k
				go func(p string, idx int) {
					defer done.Done()
					rid := strconv.Itoa(idx)
					errS := stream(sc, http.Header{"Streamtype": {"error"}, "Port": {p}, "Requestid": {rid}})
					data := stream(sc, http.Header{"Streamtype": {"data"}, "Port": {p}, "Requestid": {rid}})
					// every connection is open before any is used
					opened.Done()
					opened.Wait()
					_, err := io.WriteString(data, "GET /index.html HTTP/1.0\r\n\r\n")
					check(err)
					b, _ := ioutil.ReadAll(data)
					e, _ := ioutil.ReadAll(errS)
					lines := strings.Split(strings.TrimSpace(string(b)), "\n")
					results[idx] = fmt.Sprintf("%s:%s|%s", p, lines[len(lines)-1], e)
				}(p, idx)
			}
		}
		done.Wait()
		for _, r := range results {
			fmt.Println(r)
		}
	}
}
