package main

import "github.com/spf13/cobra"

func drillCmd() *cobra.Command {
	return &cobra.Command{Use: "drill FILE...", Short: "Run drills on an embedded control plane"}
}
