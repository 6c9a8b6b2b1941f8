// The API's response shapes around the resources (which are `ApiResource<Model>` and
// `ApiList<Item>` in api.ts): errors, search results, command status. Written by hand to
// match api/ (errors.py, responses.py, controllers/); tests/api/test_typescript_contract.py
// compiles recorded responses of the real API against these types, so a drift fails there.

/** Stripe's error types, as this API uses them. */
export type ErrorType =
  | "api_error"
  | "authentication_error"
  | "card_error"
  | "idempotency_error"
  | "invalid_request_error"
  | "rate_limit_error";

export type ApiError = {
  type: ErrorType;
  /** e.g. resource_missing, parameter_unknown, email_invalid; null when there is none */
  code: string | null;
  message: string;
  /** The request parameter at fault, Stripe-style (`address[country]`), or null */
  param: string | null;
  /** Card declines only (payments) */
  decline_code?: string;
};

/** Every failure, whatever the status (400, 401, 404, 409, 413, 422, 429, 503, ...). */
export type ErrorResponse = { error: ApiError };

/** `GET /v1/<resource>/search`: a page of matches, newest first. */
export type SearchResult<Item> = {
  object: "search_result";
  data: Item[];
  hasMore: boolean;
  url: string;
  /** pass as `page` to get the next page; null on the last one */
  nextPage: string | null;
};

/** A write answered 202: the command was accepted but not applied within the timeout. */
export type CommandAccepted = {
  object: "command";
  id: string;
  status: "pending";
  /** GET this (also in the Location header) for the outcome */
  statusUrl: string;
};

/** `GET /v1/commands/{id}`: `result` is the resource the write returned once it succeeded. */
export type CommandStatus<Result = { [field: string]: unknown }> =
  | { object: "command"; id: string; status: "pending"; result: null; error: null }
  | { object: "command"; id: string; status: "succeeded"; result: Result; error: null }
  | { object: "command"; id: string; status: "failed"; result: null; error: ApiError };

/** A response that shows a new secret once (API key create and roll). */
export type WithSecret<Resource> = Resource & { secret: string };
