// Command publish is the PublishFunction Lambda function (see template.yaml).
package main

import (
	"github.com/workorders/notify/internal/app"
	"github.com/workorders/notify/internal/fanout"
)

func main() { app.Main(app.PublishFunction, app.BuildPublish, app.Deps{NewFanout: fanout.NewClient}) }
