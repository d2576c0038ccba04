package samtemplate

import ("testing"; "encoding/json")

func TestSmoke(t *testing.T) {
	tm, err := Load("../../template.yaml")
	if err != nil { t.Fatal(err) }
	b, _ := json.MarshalIndent(tm, "", " ")
	t.Log(string(b))
	for k, v := range tm.Outputs { t.Log(k, v) }
	t.Logf("%v", tm.doc["Rules"])
}
