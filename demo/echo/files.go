package echo

import "embed"

// Files holds the YAML `weft up --demo echo` applies: a gateway route to
// echo v1 and the DestinationRule defining subsets v1 and v2.
//
//go:embed *.yaml
var Files embed.FS
