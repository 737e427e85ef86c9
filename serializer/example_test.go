package serializer_test

import (
	"fmt"

	"github.com/strata-cache/strata/serializer"
)

func ExampleMsgpack() {
	type Product struct {
		SKU   string
		Price int64
	}
	var s serializer.Serializer = serializer.Msgpack{}
	b, err := s.Marshal(Product{SKU: "A-1", Price: 1999})
	if err != nil {
		panic(err)
	}
	var p Product // always decode into the concrete type
	if err := s.Unmarshal(b, &p); err != nil {
		panic(err)
	}
	fmt.Println(p.SKU, p.Price)
	// Output: A-1 1999
}
