package cli

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// defaultTokenTTL is how long `weft token create` tokens admit proxies
// unless --ttl says otherwise.
const defaultTokenTTL = 24 * time.Hour

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token create|list|revoke",
		Short: "Manage join tokens: each admits proxies of one namespace and service account",
		Long: `A join token lets a proxy join the mesh as one workload identity: the
control plane gives it configuration and a certificate for
spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT and refuses it any
other. weft run mints its own; create one for a proxy started by hand or on
another host (weft run --join-token-file, weft proxy --join-token-file).
Every token command needs the API token.`,
	}
	cmd.AddCommand(newTokenCreateCmd(g), newTokenListCmd(g), newTokenRevokeCmd(g))
	return cmd
}

func newTokenCreateCmd(g *globals) *cobra.Command {
	var sa, note string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "create -n NAMESPACE --service-account SA [--ttl D]",
		Short: "Print a new join token for one namespace and service account",
		Long: `Print a new join token, and nothing else on stdout (so it can go straight
into a file), that admits proxies claiming NAMESPACE/SA only. It works for
--ttl (default 24h; 0: until revoked); a proxy that joined with it is
disconnected when it expires or is revoked.

  weft token create -n default --service-account catalog --ttl 0 > catalog.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < 0 {
				return fmt.Errorf("--ttl %v: want a positive duration, or 0 for no expiry", ttl)
			}
			ns, _ := g.ns()
			tok, info, err := g.client().CreateJoinToken(cmd.Context(), ns, sa, ttl, note)
			if err != nil {
				return explainAPIError(err)
			}
			fmt.Println(tok)
			fmt.Fprintf(os.Stderr, "join token %s admits %s, %s\n", info.ID, info.Identity(), expiry(info.Expires))
			return nil
		},
	}
	cmd.Flags().StringVar(&sa, "service-account", "", "service account the token admits (required)")
	cmd.Flags().DurationVar(&ttl, "ttl", defaultTokenTTL, "how long the token admits proxies; 0: until revoked")
	cmd.Flags().StringVar(&note, "note", "", "what the token is for, shown by weft token list")
	_ = cmd.MarkFlagRequired("service-account")
	return cmd
}

func expiry(t time.Time) string {
	switch {
	case t.IsZero():
		return "until revoked"
	case !t.After(time.Now()):
		return "expired " + t.Local().Format(time.RFC3339)
	}
	return "until " + t.Local().Format(time.RFC3339)
}

func newTokenListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the join tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := g.client().JoinTokens(cmd.Context())
			if err != nil {
				return explainAPIError(err)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tIDENTITY\tCREATED\tVALID\tNOTE")
			for _, t := range list {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Identity(), t.Created.Local().Format(time.RFC3339), expiry(t.Expires), t.Note)
			}
			return w.Flush()
		},
	}
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID...",
		Short: "Revoke join tokens; proxies that joined with them are disconnected",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, id := range args {
				info, err := g.client().RevokeJoinToken(cmd.Context(), id)
				if err != nil {
					return explainAPIError(err)
				}
				fmt.Printf("join token %s (%s) revoked\n", info.ID, info.Identity())
			}
			return nil
		},
	}
}
