import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Error message used when the server answers 404 for an nb2pipe route. */
export const SERVER_EXTENSION_MISSING =
  'the nb2pipe server extension is not installed';

/**
 * Call the nb2pipe server extension's REST API.
 *
 * A 404 with nb2pipe's JSON body (`{"message": ...}`, e.g. a notebook that does not
 * exist) keeps its message; any other 404 means no route: the server extension is missing.
 *
 * @param endPoint - path below `<baseUrl>/nb2pipe/`
 * @param init - initial values for the request
 * @returns the response body, parsed as JSON when possible
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const requestUrl = URLExt.join(settings.baseUrl, 'nb2pipe', endPoint);

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(requestUrl, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }

  let data: any = await response.text();
  let json = false;
  if (data.length > 0) {
    try {
      data = JSON.parse(data);
      json = true;
    } catch {
      // Not JSON: keep the text as is.
    }
  }

  if (response.status === 404 && !(json && typeof data?.message === 'string')) {
    throw new ServerConnection.ResponseError(
      response,
      SERVER_EXTENSION_MISSING
    );
  }

  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, data.message || data);
  }

  return data as T;
}
