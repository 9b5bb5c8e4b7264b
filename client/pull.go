package client

// pullCfg is a PullConsumer's configuration.
type pullCfg struct {
	common commonCfg
}
