// Command fanout is the FanoutFunction Lambda function (see template.yaml):
// PublishFunction hands it batches of a large publish's connections.
package main

import "github.com/workorders/notify/internal/app"

func main() { app.Main(app.FanoutFunction, app.BuildFanout, app.Deps{}) }
