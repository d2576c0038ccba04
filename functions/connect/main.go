// Command connect is the ConnectFunction Lambda function (see template.yaml).
package main

import "github.com/workorders/notify/internal/app"

func main() { app.Main(app.ConnectFunction, app.BuildConnect, app.Deps{}) }
