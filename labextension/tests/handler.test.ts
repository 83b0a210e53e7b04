import { PageConfig } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { requestAPI, SERVER_EXTENSION_MISSING } from '../src/handler';

/** Replace the global fetch (used by ServerConnection) with a canned response. */
function mockFetch(body: string, status: number): jest.SpyInstance {
  return jest
    .spyOn(globalThis, 'fetch')
    .mockImplementation(async () => new Response(body, { status }));
}

describe('requestAPI', () => {
  beforeAll(() => {
    // Outside a lab page there is no #jupyter-config-data; Node's Request
    // needs an absolute URL, so point PageConfig at a (never contacted) server.
    PageConfig.setOption('baseUrl', 'http://localhost:8888/');
  });

  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('maps a 404 to "the nb2pipe server extension is not installed"', async () => {
    const fetchSpy = mockFetch('<html>404: Not Found</html>', 404);

    const call = requestAPI('status');
    await expect(call).rejects.toBeInstanceOf(ServerConnection.ResponseError);
    await expect(call).rejects.toThrow(SERVER_EXTENSION_MISSING);
    expect(SERVER_EXTENSION_MISSING).toBe(
      'the nb2pipe server extension is not installed'
    );

    expect(fetchSpy).toHaveBeenCalledTimes(1);
    const request = fetchSpy.mock.calls[0][0] as Request;
    expect(new URL(request.url).pathname).toBe('/nb2pipe/status');
  });

  it("keeps nb2pipe's own 404 message (e.g. a missing notebook)", async () => {
    mockFetch('{"message": "notebook \'x.ipynb\' does not exist"}', 404);
    await expect(requestAPI('status?path=x.ipynb')).rejects.toThrow(
      "notebook 'x.ipynb' does not exist"
    );
  });

  it('returns parsed JSON on success', async () => {
    mockFetch('{"ok": true}', 200);
    await expect(requestAPI<{ ok: boolean }>('status')).resolves.toEqual({
      ok: true
    });
  });

  it('uses the server message for other errors', async () => {
    mockFetch('{"message": "boom"}', 500);
    await expect(requestAPI('status')).rejects.toThrow('boom');
  });
});
