"""Operation validation with the reference's leniency about `ID` (graphql.md §6).

The reference (async-graphql) runs `query ($id: ID!) { user(id: $id) }` against
`user(id: Int!)`; standard GraphQL rejects the variable's position. Its own suites rely on
that, so a variable typed `ID` may stand where `Int` or `String` is expected and the
other way round (lists and non-null wrappers are still checked). Every other rule is
graphql-core's `specified_rules`. `ID` is also always a known type, as the GraphQL
specification's built-in scalar, even when the schema never mentions it.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLID,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLSchema,
    GraphQLType,
    OperationDefinitionNode,
    get_named_type,
    specified_rules,
    type_from_ast,
)
from graphql.error import GraphQLError
from graphql.validation import ASTValidationRule, VariablesInAllowedPositionRule
from graphql.validation.rules.variables_in_allowed_position import allowed_variable_usage

_ID_PEERS = frozenset({"Int", "String"})


class LenientVariablePositions(VariablesInAllowedPositionRule):
    """graphql-core's rule, with `ID` interchangeable with `Int` and `String`."""

    def leave_operation_definition(self, operation: OperationDefinitionNode,
                                   *_args: Any) -> None:
        schema = self.context.schema
        for usage in self.context.get_recursive_variable_usages(operation):
            name = usage.node.name.value
            var_def = usage.fragment_variable_definition or self.var_def_map.get(name)
            if not var_def or not usage.type:
                continue
            var_type = type_from_ast(schema, var_def.type)
            if var_type is None:
                continue
            var_type = _as_peer(var_type, usage.type)
            if not allowed_variable_usage(schema, var_type, var_def.default_value,
                                          usage.type, usage.default_value):
                self.report_error(GraphQLError(
                    f"Variable '${name}' of type '{var_type}' used"
                    f" in position expecting type '{usage.type}'.", [var_def, usage.node]))


def _as_peer(var_type: GraphQLType, location: GraphQLType) -> GraphQLType:
    """`var_type` with its named type replaced by the location's when they are ID peers."""
    var_name = get_named_type(var_type).name
    loc_named = get_named_type(location)
    pair = {var_name, loc_named.name}
    if var_name != loc_named.name and "ID" in pair and pair - {"ID"} <= _ID_PEERS:
        return _rewrap(var_type, loc_named)
    return var_type


def _rewrap(var_type: GraphQLType, named: GraphQLNamedType) -> GraphQLType:
    if isinstance(var_type, GraphQLNonNull):
        return GraphQLNonNull(_rewrap(var_type.of_type, named))  # type: ignore[type-var]
    if isinstance(var_type, GraphQLList):
        return GraphQLList(_rewrap(var_type.of_type, named))
    return named


RULES: tuple[type[ASTValidationRule], ...] = tuple(
    LenientVariablePositions if rule is VariablesInAllowedPositionRule else rule
    for rule in specified_rules)


def with_builtin_id(schema: GraphQLSchema) -> GraphQLSchema:
    """`schema`, with the built-in `ID` scalar known even when no field uses it."""
    if "ID" in schema.type_map:
        return schema
    kwargs: dict[str, Any] = dict(schema.to_kwargs())
    kwargs["types"] = (*(kwargs["types"] or ()), GraphQLID)
    return GraphQLSchema(**kwargs)
