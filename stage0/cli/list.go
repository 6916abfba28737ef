package cli

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rktng/rkt/common/pod"
)

type listFlags struct {
	Full     bool
	NoLegend bool
	Format   string
}

func newListCommand(g *globals) *cobra.Command {
	var f listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List pods",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runList(g, f)
		},
	}
	cmd.Flags().BoolVar(&f.Full, "full", false, "use long output format")
	cmd.Flags().BoolVar(&f.NoLegend, "no-legend", false, "suppress a legend with the list")
	cmd.Flags().StringVar(&f.Format, "format", "", "choose the output format: json, json-pretty")
	return cmd
}

func runList(g *globals, f listFlags) error {
	if err := checkFormat(f.Format); err != nil {
		return err
	}
	pods, err := pod.List(g.Dir)
	if err != nil {
		return fmt.Errorf("listing pods in %s: %w", g.Dir, err)
	}
	// Each pod is read on its own (its directory only), in parallel.
	infos := make([]podJSON, len(pods))
	pod.Parallel(len(pods), func(i int) {
		infos[i] = describePod(pods[i], false)
		pods[i].Close()
	})
	// One write at the end rather than one per table cell.
	out := bufio.NewWriterSize(g.stdout, 64*1024)
	if f.Format != "" {
		if err := printJSON(out, infos, f.Format); err != nil {
			return err
		}
		return out.Flush()
	}
	if err := printList(out, infos, f); err != nil {
		return err
	}
	return out.Flush()
}

func printList(w io.Writer, infos []podJSON, f listFlags) error {
	tw := tabwriter.NewWriter(w, 0, 8, 1, '\t', 0)
	if !f.NoLegend {
		if f.Full {
			fmt.Fprintln(tw, "UUID\tAPP\tIMAGE NAME\tIMAGE ID\tSTATE\tCREATED\tSTARTED\tNETWORKS")
		} else {
			fmt.Fprintln(tw, "UUID\tAPP\tIMAGE NAME\tSTATE\tCREATED\tSTARTED\tNETWORKS")
		}
	}
	for _, j := range infos {
		uuid := j.Name
		if !f.Full {
			uuid = uuid[:8]
		}
		nets, state := netsString(j.Networks), j.textState
		created, started := humanTime(j.created, f.Full), humanTime(j.started, f.Full)
		if len(j.Apps) == 0 {
			if f.Full {
				fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\t%s\t%s\t%s\n", uuid, state, created, started, nets)
			} else {
				fmt.Fprintf(tw, "%s\t-\t-\t%s\t%s\t%s\t%s\n", uuid, state, created, started, nets)
			}
			continue
		}
		for i, a := range j.Apps {
			if i > 0 {
				// rkt printed the pod's columns on its first app's row only.
				uuid, state, created, started, nets = "", "", "", "", ""
			}
			if f.Full {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", uuid, a.Name, j.imageName[a.Name], shortImageID(a.ImageID, 12), state, created, started, nets)
			} else {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", uuid, a.Name, j.imageName[a.Name], state, created, started, nets)
			}
		}
	}
	return tw.Flush()
}

func netsString(nets []netJSON) string {
	var parts []string
	for _, n := range nets {
		parts = append(parts, n.NetName+":ip4="+n.IP)
	}
	return strings.Join(parts, ", ")
}

// shortImageID cuts an image ID to "sha512-" and n hex digits, as rkt
// printed IDs for people (list --full: 12, fetch: 32).
func shortImageID(id string, n int) string {
	const prefix = "sha512-"
	if strings.HasPrefix(id, prefix) && len(id) > len(prefix)+n {
		return id[:len(prefix)+n]
	}
	return id
}
