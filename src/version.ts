/** crossmesh's version: `crossmesh --version`, the API server's /version. Kept equal to package.json's (a test checks). */
export const VERSION = '0.1.0';
