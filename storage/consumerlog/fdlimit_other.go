//go:build !unix

package consumerlog

func fileLimit() int { return 4096 }
