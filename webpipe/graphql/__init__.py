"""GraphQL for Web Pipe (spec/graphql.md): schema, resolver pipelines, DataLoader batching.

`schema.build_graphql(env)` builds the app's executable schema once (cached in
`env.resources["graphql"]`); `runtime.GraphqlRuntime` prepares and executes documents;
`resolvers` and `loaders` turn `query`/`mutation`/`resolver` pipelines into field
resolvers; `endpoint` serves the automatic `POST` endpoint (§7). Only the names re-exported
here are imported eagerly, and none of them imports graphql-core: the library is loaded the
first time a program actually uses GraphQL.
"""

from __future__ import annotations

from webpipe.graphql.endpoint import graphql_endpoint_path, handle_graphql_request, load_graphql

__all__ = ["graphql_endpoint_path", "handle_graphql_request", "load_graphql"]
