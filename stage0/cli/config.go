package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rktng/rkt/common/config"
)

func newConfigCommand(g *globals) *cobra.Command {
	var pretty bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print configuration for each stage in JSON format",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runConfig(g, pretty)
		},
	}
	cmd.Flags().BoolVar(&pretty, "pretty-print", true, "apply indent to format the output")
	return cmd
}

func runConfig(g *globals, pretty bool) error {
	cfg, err := g.config()
	if err != nil {
		return err
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encoding configuration: %w", err)
	}
	return printRawJSON(g, raw, pretty)
}

// config loads rkt's configuration directories once per invocation.
func (g *globals) config() (*config.Config, error) {
	if g.cfg != nil {
		return g.cfg, nil
	}
	cfg, err := config.Load(g.SystemConfig, g.LocalConfig, g.UserConfig)
	if err != nil {
		return nil, fmt.Errorf("loading configuration: %w", err)
	}
	g.cfg = cfg
	return cfg, nil
}
