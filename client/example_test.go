package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/cleavefs/cleave/client"
)

func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, []string{"127.0.0.1:7400", "127.0.0.1:7401"},
		client.WithClientName("example"), client.WithTimeout(5*time.Second))
	if err != nil {
		log.Fatal(err) // e.g. "UNAVAILABLE: no router reachable: ..."
	}
	defer c.Close()

	st, err := c.Put(ctx, "/photos/2024/a.txt", []byte("hello"), client.Parents())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("version", st.Version, "size", st.Size)

	data, err := c.Get(ctx, "/photos/2024/a.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", data)

	entries, err := c.List(ctx, "/photos/2024")
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Println(e.Name, e.IsDir(), e.Mtime.Format(time.RFC3339))
	}

	if _, err := c.Stat(ctx, "/photos/missing"); errors.Is(err, client.ErrNotFound) {
		fmt.Println("missing, as expected:", client.CodeOf(err))
	}
}
