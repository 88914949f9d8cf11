package main

import (
	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/cmd/gotcmu/internal/config"
	"github.com/gotcmu/gotcmu/handler"
	"github.com/gotcmu/gotcmu/handler/file"
	"github.com/gotcmu/gotcmu/handler/mem"
	"github.com/gotcmu/gotcmu/rbd"
)

// handlers are the backstore subtypes this daemon serves.
func handlers(cfg config.Config, log zerolog.Logger) []handler.Handler {
	return []handler.Handler{
		file.Handler(file.Options{}),
		mem.Handler(),
		rbd.Handler(rbd.Options{ImagesPerClient: cfg.RBDImagesPerClient}),
	}
}
