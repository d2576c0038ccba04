package localgw

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// FunctionInfo is what ListFunctions and GetFunction report about a function beyond its name,
// ARN and timeout. Zero fields take the defaults below.
type FunctionInfo struct {
	Runtime       string            // default "provided.al2023"
	Handler       string            // default "bootstrap"
	MemorySize    int32             // default 128
	Architectures []string          // default ["x86_64"]
	Environment   map[string]string // reported as Environment.Variables when non-empty
	Description   string
}

// lambdaPrefix is the Lambda API's path prefix.
const lambdaPrefix = "/2015-03-31/"

// lastModifiedLayout is FunctionConfiguration.LastModified's layout.
const lastModifiedLayout = "2006-01-02T15:04:05.000-0700"

// functionConfiguration is Lambda's FunctionConfiguration.
type functionConfiguration struct {
	FunctionName     string         `json:"FunctionName"`
	FunctionArn      string         `json:"FunctionArn"`
	Runtime          string         `json:"Runtime"`
	Role             string         `json:"Role"`
	Handler          string         `json:"Handler"`
	CodeSize         int64          `json:"CodeSize"`
	CodeSha256       string         `json:"CodeSha256"`
	Description      string         `json:"Description"`
	Timeout          int32          `json:"Timeout"`
	MemorySize       int32          `json:"MemorySize"`
	LastModified     string         `json:"LastModified"`
	Version          string         `json:"Version"`
	State            string         `json:"State"`
	PackageType      string         `json:"PackageType"`
	Architectures    []string       `json:"Architectures"`
	Environment      *functionEnv   `json:"Environment,omitempty"`
	TracingConfig    map[string]any `json:"TracingConfig"`
	LoggingConfig    map[string]any `json:"LoggingConfig"`
	EphemeralStorage map[string]int `json:"EphemeralStorage"`
}

type functionEnv struct {
	Variables map[string]string `json:"Variables"`
}

// serveLambda is the Lambda API under /2015-03-31/: Invoke, ListFunctions and GetFunction.
// Anything else answers a JSON error with x-amzn-ErrorType, as Lambda does.
func (g *Gateway) serveLambda(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-amzn-RequestId", uuid.NewString())
	rest := strings.TrimPrefix(r.URL.Path, lambdaPrefix)
	switch {
	case rest == "functions/" || rest == "functions":
		if r.Method != http.MethodGet {
			unknownOperation(w)
			return
		}
		g.listFunctions(w)
		return
	case strings.HasPrefix(rest, "functions/"):
		ref := strings.TrimPrefix(rest, "functions/")
		if name, ok := strings.CutSuffix(ref, "/invocations"); ok && name != "" && !strings.Contains(name, "/") {
			g.serveInvoke(w, r, name)
			return
		}
		if ref != "" && !strings.Contains(strings.TrimSuffix(ref, "/"), "/") && r.Method == http.MethodGet {
			g.getFunction(w, r, strings.TrimSuffix(ref, "/"))
			return
		}
	}
	unknownOperation(w)
}

func unknownOperation(w http.ResponseWriter) {
	writeLambdaError(w, http.StatusNotFound, "UnknownOperationException", "Unknown operation")
}

// resolveFunction finds the function a FunctionName (name, partial ARN or ARN, optionally
// qualified) and Qualifier parameter name. Only the unqualified function and $LATEST exist:
// any other qualifier is refused, as Lambda refuses a version or alias it does not have.
// It answers the 404 itself and returns ok false.
func (g *Gateway) resolveFunction(w http.ResponseWriter, r *http.Request, ref string) (string, bool) {
	name, qualifier := splitFunctionRef(ref)
	if q := r.URL.Query().Get("Qualifier"); q != "" {
		if qualifier != "" && qualifier != q {
			writeLambdaError(w, http.StatusBadRequest, "InvalidParameterValueException",
				"The derived qualifier from the function name does not match the specified qualifier.")
			return "", false
		}
		qualifier = q
	}
	if _, ok := g.functions[name]; !ok {
		writeLambdaError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+functionARN(name))
		return "", false
	}
	if qualifier != "" && qualifier != "$LATEST" {
		writeLambdaError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+functionARN(name)+":"+qualifier)
		return "", false
	}
	return name, true
}

// splitFunctionRef splits a name, partial ARN (ACCOUNT:function:NAME) or ARN, each optionally
// qualified (:$LATEST, :alias), into the name and the qualifier.
func splitFunctionRef(ref string) (name, qualifier string) {
	if _, after, ok := strings.Cut(ref, "function:"); ok {
		ref = after
	}
	name, qualifier, _ = strings.Cut(ref, ":")
	return name, qualifier
}

func (g *Gateway) configuration(name string) functionConfiguration {
	fn := g.functions[name]
	info := g.cfg.FunctionInfo[name]
	if info.Runtime == "" {
		info.Runtime = "provided.al2023"
	}
	if info.Handler == "" {
		info.Handler = "bootstrap"
	}
	if info.MemorySize <= 0 {
		info.MemorySize = 128
	}
	if len(info.Architectures) == 0 {
		info.Architectures = []string{"x86_64"}
	}
	sum := sha256.Sum256([]byte(name))
	c := functionConfiguration{
		FunctionName:     name,
		FunctionArn:      functionARN(name),
		Runtime:          info.Runtime,
		Role:             "arn:aws:iam::" + AccountID + ":role/" + name + "Role",
		Handler:          info.Handler,
		CodeSha256:       base64.StdEncoding.EncodeToString(sum[:]),
		Description:      info.Description,
		Timeout:          int32((fn.timeout + time.Second - 1) / time.Second),
		MemorySize:       info.MemorySize,
		LastModified:     g.startedAt.UTC().Format(lastModifiedLayout),
		Version:          "$LATEST",
		State:            "Active",
		PackageType:      "Zip",
		Architectures:    info.Architectures,
		TracingConfig:    map[string]any{"Mode": "PassThrough"},
		LoggingConfig:    map[string]any{"LogFormat": "JSON", "LogGroup": "/aws/lambda/" + name},
		EphemeralStorage: map[string]int{"Size": 512},
	}
	if len(info.Environment) > 0 {
		c.Environment = &functionEnv{Variables: info.Environment}
	}
	return c
}

// listFunctions is ListFunctions: every function, sorted by name, in one page.
func (g *Gateway) listFunctions(w http.ResponseWriter) {
	names := make([]string, 0, len(g.functions))
	for name := range g.functions {
		names = append(names, name)
	}
	slices.Sort(names)
	list := make([]functionConfiguration, 0, len(names))
	for _, name := range names {
		list = append(list, g.configuration(name))
	}
	writeJSON(w, http.StatusOK, map[string]any{"Functions": list}, "")
}

// getFunction is GetFunction: the configuration and where the code would be.
func (g *Gateway) getFunction(w http.ResponseWriter, r *http.Request, ref string) {
	name, ok := g.resolveFunction(w, r, ref)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"Configuration": g.configuration(name),
		"Code":          map[string]string{"RepositoryType": "S3", "Location": "http://" + g.Addr() + "/"},
		"Tags":          map[string]string{},
	}, "")
}
