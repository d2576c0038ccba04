// Command default is the DefaultFunction Lambda function (see template.yaml).
package main

import "github.com/workorders/notify/internal/app"

func main() { app.Main(app.DefaultFunction, app.BuildDefault, app.Deps{}) }
