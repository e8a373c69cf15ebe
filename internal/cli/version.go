package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/internal/version"
)

func newVersionCmd(g *globals) *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version [--client]",
		Short: "Print weft's version, and the running control plane's",
		Long: `Version prints this binary's version (also: weft --version) and, unless
--client, that of the control plane the CLI finds (see ` + "`weft config view`" + `).
A control plane that does not answer is reported, not an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Printf("client: weft %s\n", version.Get())
			if clientOnly {
				return nil
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			h, err := g.client().Health(ctx)
			if err != nil {
				fmt.Printf("control plane: none answering (%v)\n", err)
				return nil
			}
			fmt.Printf("control plane: weft %s at %s\n", h.Version, g.apiURL())
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print only this binary's version")
	return cmd
}
