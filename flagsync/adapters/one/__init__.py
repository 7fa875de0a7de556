"""The `FlagGateway` over One's HTTP interface: wire contract, answer classification, pacing, tokens and the gateway."""
