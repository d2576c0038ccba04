// Command disconnect is the DisconnectFunction Lambda function (see template.yaml).
package main

import "github.com/workorders/notify/internal/app"

func main() { app.Main(app.DisconnectFunction, app.BuildDisconnect, app.Deps{}) }
