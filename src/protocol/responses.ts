/**
 * Command responses: reading them (as Mercurial's clientreactor does) and emitting them (as its
 * serverreactor/outputstream do), sans I/O.
 *
 * What is where (this module only re-exports; inside src/protocol import the part itself):
 * - responses/read.ts   ResponseReader, collectResponses, and the error-message formatting;
 * - responses/write.ts  redirect, command-error, error-response and ok answers, ResponseEmitter.
 */
export {
  ResponseReader,
  collectResponses,
  commandErrorMessage,
  formatErrorAtoms,
  formatMessage,
  type CollectedResponse,
  type ResponseEvent,
  type ResponseReaderOptions,
  type ResponseStatus,
} from "./responses/read.ts";
export {
  OK_STATUS,
  ResponseEmitter,
  SERVER_STREAM_ID,
  encodeCommandError,
  encodeErrorResponseFrame,
  encodeOkResponse,
  encodeRedirectResponse,
  redirectStatusMap,
  type ErrorResponseType,
  type RedirectLocation,
} from "./responses/write.ts";
