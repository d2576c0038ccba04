// Package realclients holds only tests: they run real, non-Go clients against
// the local stack (internal/devstack, what `notify local` serves) on a
// loopback port.
//
//   - The README's publishing and disconnect examples, extracted from
//     README.md so that they stay verbatim: the AWS CLI (`aws lambda invoke`)
//     blocks and the boto3 blocks. Only the endpoint is added
//     (`--endpoint-url`, `endpoint_url=`); with AWS CLI v1 the
//     `--cli-binary-format` option is dropped, as the README says v1 takes
//     the payload without it.
//   - A Management API round trip with the AWS SDK for JavaScript v3 (post,
//     get, delete, then post → GoneException), after a publish through its
//     Lambda client.
//   - The ws package as a WebSocket client: a binary message closes the
//     socket with 1003, and data posted to @connections that is not UTF-8
//     arrives as a binary frame.
//
// The clients are the machine's `aws` (AWS CLI) and `python3` with boto3,
// and node with the packages pinned in tools/package.json
// (`npm ci --prefix tools`, which `make test` runs). A missing client skips
// its test with a message, or fails it when CI=true. Every child process gets
// dummy credentials, AWS_DEFAULT_REGION and AWS_REGION us-east-1,
// AWS_EC2_METADATA_DISABLED=true and no shared configuration files, so no
// client looks for credentials on the network.
package realclients
