// Command publish is the PublishFunction Lambda function (see template.yaml).
package main

import "github.com/workorders/notify/internal/app"

func main() { app.Main(app.PublishFunction) }
